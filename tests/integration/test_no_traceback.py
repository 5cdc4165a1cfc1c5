"""No traceback anywhere a user can reach: an output that cannot be written is one `error:` line and exit 2
before any work, a full disk is one line and exit 2, and Ctrl-C at any moment is one line saying what was
kept and how to go on, exit 130.

Unwritable folders are made three ways, since tests may run as root, for whom chmod blocks nothing: a path
through a regular file (fails for root too), `os.access` answering no (a folder without permission), and
`statvfs` answering read-only (a read-only mount)."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fairbench import atomic
from fairbench.cli import app
from tests.helpers import REPO_ROOT

REPO = REPO_ROOT

# Every command that writes, with the output put under `X` (a path the test makes unwritable).
WRITERS = {
    "run": ["run", "--method", "vanilla", "--task", "digits-bicolor", "--steps", "2", "--device", "cpu", "--out", "X"],
    "score": ["score", "CKPT", "--device", "cpu", "--out", "X/result.json"],
    "score-beside-checkpoint": ["score", "X/checkpoint.pt", "--device", "cpu"],
    "sweep": ["sweep", "--methods", "vanilla", "--tasks", "digits-bicolor", "--steps", "2", "--out", "X"],
    "leaderboard": ["leaderboard", "--results", "RESULTS", "--out", "X"],
    "report": ["report", "X/result.json", "--no-samples"],
    "grid": ["grid", "CKPT", "--out", "X/grid.png"],
    "curve": ["curve", "RESULTS", "--out", "X/curve.png"],
    "gain": ["gain", "--base", "RESULT", "--new", "RESULT", "--out", "X/gain.json"],
    "conditions": ["conditions", "RESULT", "--out", "X/conditions.png"],
    "vary": ["vary", "RESULT", "--param", "clip_norm", "--out", "X/vary.png"],
    "import-stylegan2": ["import-stylegan2", "CKPT", "--out", "X/imported.pt"],
    "judge-train": ["judge", "train", "--task", "digits-bicolor", "--out", "X"],
    "features-train": ["features", "train", "--task", "digits-bicolor", "--out", "X"],
}


def _args(command: str, out: Path, tmp_path: Path) -> list[str]:
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    names = {"X": str(out), "CKPT": str(tmp_path / "missing.pt"), "RESULTS": str(results),
             "RESULT": str(tmp_path / "missing.json")}
    return [names.get(a, a.replace("X/", f"{out}/")) for a in WRITERS[command]]


def _one_error_line(result, after_progress: bool = False) -> str:
    """The one `error:` line; with `after_progress`, the last line after progress lines (a pipe gets them)."""
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    if after_progress:
        assert [line for line in lines if line.startswith("error")] == lines[-1:], result.output
    else:
        assert len(lines) == 1, result.output
    assert lines[-1].startswith("error: "), result.output
    return lines[-1]


@pytest.mark.parametrize("command", sorted(WRITERS))
def test_output_under_a_regular_file_is_one_line_before_any_work(command: str, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "out"
    started = time.monotonic()
    result = CliRunner().invoke(app, _args(command, out, tmp_path))
    assert result.exit_code == 2
    line = _one_error_line(result)
    assert str(out) in line and f"{blocker} is a file, not a folder" in line
    # Before any work: inputs that do not exist are not even looked at, nothing is trained or written.
    assert "missing" not in line and time.monotonic() - started < 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "results"]


@pytest.mark.parametrize("command", ["run", "score", "leaderboard", "report"])
def test_folder_without_permission_or_read_only_is_one_line(
    command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access, real_statvfs = os.access, os.statvfs
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == locked else real_access(p, mode, **kw))
    out = locked / "sub"
    result = CliRunner().invoke(app, _args(command, out, tmp_path))
    assert result.exit_code == 2 and f"no permission to write in {locked}" in _one_error_line(result)

    class ReadOnly:
        f_flag = os.ST_RDONLY

    monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly() if Path(p) == locked else real_statvfs(p))
    result = CliRunner().invoke(app, _args(command, out, tmp_path))
    assert result.exit_code == 2 and f"{locked} is on a read-only file system" in _one_error_line(result)
    assert not out.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through any permission bits")
def test_chmod_read_only_folder_is_one_line(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = CliRunner().invoke(app, _args("run", locked / "runs", tmp_path))
    finally:
        locked.chmod(0o700)
    assert result.exit_code == 2 and f"no permission to write in {locked}" in _one_error_line(result)


def _full_disk(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_full_disk_while_training_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first checkpoint's write fails: one line naming it, no half-written file left behind."""
    from fairbench.submission import checkpoint

    def fill_the_disk(obj, fh):
        fh.write(b"partial")
        _full_disk()

    monkeypatch.setattr(checkpoint.torch, "save", fill_the_disk)
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, _args("run", runs, tmp_path))
    assert result.exit_code == 2
    folder = runs / "digits-bicolor" / "vanilla" / "seed0"
    assert _one_error_line(result, after_progress=True) == (
        f"error: cannot write {folder / 'checkpoint.pt'}: No space left on device; the disk is full: free some "
        "space, then rerun"
    )
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]  # no temp file, no partial checkpoint


def test_full_disk_writing_the_result_is_one_line(digits_checkpoint: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.json"
    real_mkstemp = atomic.tempfile.mkstemp

    def full_here(*args, dir=None, **kwargs):  # the result's folder is full; caches elsewhere are not
        if Path(dir) == tmp_path:
            _full_disk()
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(atomic.tempfile, "mkstemp", full_here)
    result = CliRunner().invoke(app, ["score", str(digits_checkpoint), "--samples", "50", "--device", "cpu",
                                      "--out", str(out)])
    assert result.exit_code == 2
    line = _one_error_line(result, after_progress=True)
    assert line.startswith(f"error: cannot write {out}: No space left on device; the disk is full")
    assert list(tmp_path.iterdir()) == []


def test_other_write_failures_are_one_line_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside fairbench.atomic (the run lock's file), an OSError of the place written to is one line as well;
    one that is not about the place (a bug) keeps its traceback."""
    from fairbench import locks

    real_open = os.open

    def no_quota(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(locks.os, "open", no_quota)
    result = CliRunner().invoke(app, _args("run", tmp_path / "runs", tmp_path))
    assert result.exit_code == 2
    folder = tmp_path / "runs" / "digits-bicolor" / "vanilla" / "seed0"
    assert _one_error_line(result) == (
        f"error: {folder / '.lock'}: Disk quota exceeded; over the disk quota: free some space, then rerun"
    )

    def bug(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise OSError(errno.EBADF, "bad file descriptor")
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(locks.os, "open", bug)
    result = CliRunner().invoke(app, _args("run", tmp_path / "runs", tmp_path))
    assert result.exit_code == 1 and isinstance(result.exception, OSError)


# ----------------------------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_while_scoring_says_nothing_was_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fairbench.scoring

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fairbench.scoring, "score_image_set", interrupted)
    images = tmp_path / "set.npz"
    np.savez(images, images=np.zeros((4, 16, 16, 1), dtype=np.uint8), labels=np.arange(4))
    result = CliRunner().invoke(app, ["score", "--task", "digits-bicolor", "--images", str(images)])
    assert result.exit_code == 130
    assert result.output.strip().splitlines()[-1] == (
        "interrupted; no result was written (it is written only when scoring completes); rerun the same command"
    )
    assert not (tmp_path / "set.result.json").exists()


def test_ctrl_c_in_training_keeps_the_state_and_rerunning_resumes(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from fairbench import training
    from fairbench.training import saved_step

    runs = tmp_path / "runs"
    folder = runs / "digits-bicolor" / "vanilla" / "seed0"
    command = ["run", "--method", "vanilla", "--task", "digits-bicolor", "--steps", "6", "--device", "cpu",
               "--checkpoint-every", "2", "--out", str(runs)]
    real, calls = training.TensorBatches.real, []

    def real_until_ctrl_c(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 5:  # in step 5 (vanilla draws one real batch a step)
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(training.TensorBatches, "real", real_until_ctrl_c)
    first = CliRunner().invoke(app, command)
    assert first.exit_code == 130, first.output
    assert f"interrupted; step 4 is saved in {folder} (checkpoint.pt and trainstate.pt); rerun the same command " \
           "to resume from it" in first.stderr
    assert first.stdout.strip() == str(folder / "checkpoint.pt") and saved_step(folder) == 4

    def ctrl_c_loading_data(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # before the loop: what an earlier run saved is what is kept
        m.setattr(training.data, "load_split", ctrl_c_loading_data)
        early = CliRunner().invoke(app, command)
    assert early.exit_code == 130
    assert early.output.strip() == (
        f"interrupted; the training state of step 4 in {folder} is kept; rerun the same command to resume from it"
    )
    monkeypatch.setattr(training.TensorBatches, "real", real)
    resumed = CliRunner().invoke(app, command)
    assert resumed.exit_code == 0, resumed.output
    assert saved_step(folder) == 6


def test_ctrl_c_during_start_up_is_one_line(tmp_path: Path) -> None:
    """A Ctrl-C while the command's modules are still being imported (deterministically: an import hook
    raises it when fairbench.cli.score is about to load)."""
    code = (
        "import sys\n"
        "class Hook:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'fairbench.cli.score':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Hook())\n"
        "from fairbench.cli import main\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "tasks"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 130
    assert done.stderr == "interrupted while starting; nothing was written\n" and done.stdout == ""


def test_real_ctrl_c_in_a_training_process(tmp_path: Path) -> None:
    """SIGINT to a real `fairbench run` once its first checkpoint is on disk: exit 130, the one line, and the
    state kept."""
    folder = tmp_path / "runs" / "digits-bicolor" / "vanilla" / "seed0"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "fairbench", "run", "--method", "vanilla", "--task", "digits-bicolor", "--steps",
         "5000", "--checkpoint-every", "5", "--device", "cpu", "--out", str(tmp_path / "runs")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background job ignores SIGINT
    )
    try:
        deadline = time.monotonic() + 120
        while not (folder / "trainstate.pt").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("interrupted; step ") and last.endswith(
        f"is saved in {tmp_path / 'runs' / 'digits-bicolor' / 'vanilla' / 'seed0'} (checkpoint.pt and trainstate.pt); "
        "rerun the same command to resume from it"
    )
    assert out.strip() == str(folder / "checkpoint.pt")
