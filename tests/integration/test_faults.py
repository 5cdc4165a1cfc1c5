"""Faults from outside the process: SIGKILL mid-training, concurrent writers, two runs on one directory.

These run real `python -m fairbench.cli` processes. Training writes `checkpoint.pt` then `trainstate.pt`, each
through a temp file (`.NAME.*.tmp`) and a rename; so a reader, the resumed run included, only ever sees a
whole file. A temp file left by a SIGKILL is harmless as long as nothing reads it: every reader here opens
the real names only, and each must always load.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fairbench.submission.checkpoint import load_checkpoint, safe_torch_load
from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.locks import run_lock
from fairbench.task_registry import get_task
from fairbench.training import RunOptions, train
from tests.helpers import REPO_ROOT

REPO = REPO_ROOT
DIGITS = "digits-bicolor"


def child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(FAIRBENCH_HOME=str(home), FAIRBENCH_OFFLINE="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env.pop("FAIRBENCH_DEBUG", None)
    return env


def run_args(out: Path, steps: int, every: int = 5) -> list[str]:
    return [
        sys.executable, "-m", "fairbench.cli", "run", "--method", "vanilla", "--task", DIGITS, "--seed", "0",
        "--steps", str(steps), "--checkpoint-every", str(every), "--device", "cpu", "--out", str(out),
    ]


def run_folder(out: Path) -> Path:
    return out / DIGITS / "vanilla" / "seed0"


def stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def check_run_files(folder: Path) -> tuple[int | None, int | None]:
    """Load whichever of checkpoint.pt / trainstate.pt exist; each must be whole. Returns their steps."""
    ckpt_step = state_step = None
    ckpt, state = folder / "checkpoint.pt", folder / "trainstate.pt"
    if ckpt.exists():
        ckpt_step = int(load_checkpoint(ckpt).train["steps"])
    if state.exists():
        loaded = safe_torch_load(state, "training state")
        assert loaded["format"] == "fairbench-trainstate/1"
        state_step = int(loaded["step"])
    return ckpt_step, state_step


# -------------------------------------------------------------------------------------------- SIGKILL


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(tmp_path: Path, digits_checkpoint: Path) -> None:
    """Kill `fairbench run` with SIGKILL three times (at a random moment, then as soon as a temp file shows a
    write in progress, then at random again), reading its files all along; the resumed run's final weights
    equal an uninterrupted run's (the session fixture: vanilla, seed 0, 60 steps, same defaults)."""
    out, env = tmp_path / "runs", child_env(tmp_path / "home")
    folder = run_folder(out)
    rng = random.Random(20261123)
    log = tmp_path / "stderr.txt"
    kills, reads, last_ckpt_step = 0, 0, 0

    def read_until(condition, proc: subprocess.Popen, pause: float = 0.02) -> None:
        nonlocal reads
        deadline = time.monotonic() + 60
        while not condition() and proc.poll() is None:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            check_run_files(folder)
            reads += 1
            time.sleep(pause)

    for mode in ("random", "mid-write", "random"):
        with open(log, "ab") as err:
            proc = subprocess.Popen(run_args(out, 60), cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            # Wait for this process to save twice, reading the real files meanwhile: the gap between the two
            # saves (5 steps) scales the random moment to this machine's speed.
            gap = 0.0
            for _ in range(2):
                seen, started = stamp(folder / "checkpoint.pt"), time.monotonic()
                read_until(lambda: stamp(folder / "checkpoint.pt") != seen, proc)
                gap = time.monotonic() - started  # the second pass measures one 5-step interval
            if mode == "random":
                kill_at = time.monotonic() + rng.uniform(0.0, 1.5 * max(gap, 0.05))
                read_until(lambda: time.monotonic() >= kill_at, proc, pause=0.0)
            else:
                old_temps = {n for n in os.listdir(folder) if n.endswith(".tmp")}  # left by an earlier kill
                read_until(lambda: any(n.endswith(".tmp") and n not in old_temps for n in os.listdir(folder)), proc,
                           pause=0.001)
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        finally:
            proc.kill()
            proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), log.read_text()[-2000:]
        ckpt_step, state_step = check_run_files(folder)
        assert ckpt_step is not None and ckpt_step >= last_ckpt_step
        # The checkpoint is written first, so the training state is never ahead of it.
        assert state_step is None or state_step <= ckpt_step
        last_ckpt_step = ckpt_step
        if proc.returncode == 0:
            break
    assert kills >= 2, f"the runs finished before they could be killed ({log.read_text()[-500:]})"
    assert last_ckpt_step < 60 and reads > 0

    done = subprocess.run(run_args(out, 60), cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == str(folder / "checkpoint.pt")
    final, reference = load_checkpoint(folder / "checkpoint.pt"), load_checkpoint(digits_checkpoint)
    assert final.train["steps"] == 60
    assert final.state_dict.keys() == reference.state_dict.keys()
    for key, value in reference.state_dict.items():
        assert torch.equal(final.state_dict[key], value), key
    leftovers = [p.name for p in folder.iterdir() if p.name not in {"checkpoint.pt", "trainstate.pt", ".lock"}]
    assert all(name.startswith(".") and name.endswith(".tmp") for name in leftovers), leftovers


# ---------------------------------------------------------------------------------- concurrent writers


def _result_json(method: str, seed: int, value: float) -> dict:
    metric = {"value": value, "ci95": [value - 0.01, value + 0.01], "higher_is_better": False}
    return {
        "schema": "fairbench-result/1", "task": DIGITS, "task_version": 1, "task_hash": "a" * 64,
        "method": method, "submission": {"kind": "checkpoint", "name": method, "path": "x", "sha256": "0" * 64},
        "seed": seed, "train": {"steps": 100, "wall_time_s": 1.0, "device": "cpu"}, "n_samples": 1000,
        "groups": ["black", "white"], "group_proportions": {"observed": [0.5, 0.5], "corrected": [0.5, 0.5]},
        "metrics": {"kl_uniform_corrected": metric, "kl_uniform": metric, "fd_l1": metric},
        "per_condition": None,
        "judge": {"id": "j", "sha256": "1" * 64, "accuracy": 0.99, "confusion": [[0.99, 0.01], [0.01, 0.99]]},
        "feature_network": None, "versions": {"fairbench": "0.1.0"},
        "created": "2026-11-23T05:00:00+00:00", "elapsed_s": 1.0,
    }


def _spawn_all(script: str, argv_list: list[list[str]], env: dict[str, str]) -> list[subprocess.Popen]:
    return [
        subprocess.Popen([sys.executable, "-c", script, *argv], cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
        for argv in argv_list
    ]


def _finish(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]


LEADERBOARD_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fairbench.board import write_leaderboard
    results, out, times = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    for _ in range(times):
        write_leaderboard(results, out, None)
    """
)


def test_concurrent_leaderboard_builds_always_leave_whole_identical_files(tmp_path: Path) -> None:
    from fairbench.board import write_leaderboard

    results = tmp_path / "results"
    for i, method in enumerate(["vanilla", "repfair", "rebalance"]):
        for seed in range(4):
            path = results / DIGITS / method / f"seed{seed}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(_result_json(method, seed, 0.05 * (i + 1) + 0.001 * seed)))
    csv_single, md_single = write_leaderboard(results, tmp_path / "single", None)
    expected = {"leaderboard.csv": csv_single.read_bytes(), "leaderboard.md": md_single.read_bytes()}

    board = tmp_path / "board"
    procs = _spawn_all(LEADERBOARD_WRITER, [[str(results), str(board), "25"]] * 4, child_env(tmp_path / "home"))
    seen = 0
    while any(p.poll() is None for p in procs):
        for name, content in expected.items():
            try:
                data = (board / name).read_bytes()
            except FileNotFoundError:
                continue  # not written yet: a reader sees no file or a whole one, never a part
            assert data == content, f"{name}: a reader saw a partial or different file"
            seen += 1
    _finish(procs)
    for name, content in expected.items():
        assert (board / name).read_bytes() == content
    assert not list(board.glob(".*.tmp")), "every completed write renames its temp file away"
    assert seen > 0


RESULT_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fairbench.results import JudgeInfo, ScoreResult, Submission, write_result
    path, writer, times = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    # ~150 KB of per-condition numbers, so an interleaved or partial write could not go unnoticed.
    big = {"observed": [[0.25 + i * 1e-7, 0.75 - i * 1e-7] for i in range(6000)], "writer": writer}
    result = ScoreResult(
        task="digits-bicolor", task_version=1, task_hash="a" * 64, method=writer,
        submission=Submission("checkpoint", writer, "x", "0" * 64), seed=0, train=None, n_samples=1000,
        sampling_seed=0, groups=["black", "white"], group_proportions={"observed": [0.5, 0.5]},
        group_counts=[500, 500], metrics={}, per_condition=big,
        judge=JudgeInfo("j", "1" * 64, 0.99, [[0.99, 0.01], [0.01, 0.99]]), bootstrap={"n_resamples": 1, "seed": 0},
        versions={}, device="cpu", git_revision=None, created="2026-11-23T05:00:00+00:00", elapsed_s=0.0,
    )
    for _ in range(times):
        write_result(path, result)
    """
)


def test_two_processes_writing_one_result_file(tmp_path: Path) -> None:
    target = tmp_path / "results" / "result.json"
    procs = _spawn_all(RESULT_WRITER, [[str(target), "alpha", "25"], [str(target), "beta", "25"]], child_env(tmp_path))
    writers_seen: set[str] = set()
    while any(p.poll() is None for p in procs):
        try:
            text = target.read_text()
        except FileNotFoundError:
            continue
        data = json.loads(text)  # a partial file would not parse
        assert data["method"] == data["per_condition"]["writer"], "two writers' bytes were mixed"
        assert len(data["per_condition"]["observed"]) == 6000
        writers_seen.add(data["method"])
    _finish(procs)
    final = json.loads(target.read_text())
    assert final["method"] in {"alpha", "beta"} and len(final["per_condition"]["observed"]) == 6000
    assert writers_seen, "the reader never saw the file while the writers ran"
    assert not list(target.parent.glob(".*.tmp"))


# ------------------------------------------------------------------------------ one run per directory


def _options(out: Path, steps: int = 3) -> RunOptions:
    return RunOptions(method="vanilla", task=get_task(DIGITS), seed=0, steps=steps, out=out, device="cpu")


def test_run_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with run_lock(folder):
        with pytest.raises(FairbenchError, match=rf"in use by another fairbench process \(pid {os.getpid()}\)"):
            with run_lock(folder):
                pass  # pragma: no cover
    with run_lock(folder):  # released on leaving the block
        pass
    with pytest.raises(KeyError):
        with run_lock(folder):
            raise KeyError("boom")
    with run_lock(folder):  # and when the block raises
        pass
    assert (folder / ".lock").is_file()


def test_train_refuses_a_run_directory_held_by_another_process(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    folder = run_folder(out)
    with run_lock(folder):
        with pytest.raises(FairbenchError) as info:
            train(_options(out))
        message = str(info.value)
        assert f"run directory {folder} is in use by another fairbench process (pid {os.getpid()})" in message
        assert not (folder / "checkpoint.pt").exists() and not (folder / "trainstate.pt").exists()
        result = CliRunner().invoke(app, ["run", "--method", "vanilla", "--task", DIGITS, "--steps", "3",
                                          "--out", str(out), "--device", "cpu"])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and "in use by another fairbench process" in lines[0]
    assert train(_options(out)) == folder / "checkpoint.pt"  # free again once the holder lets go


def test_two_fairbench_run_processes_on_one_directory(tmp_path: Path) -> None:
    """A second `fairbench run` on a directory being trained is refused (naming the first's pid) and leaves
    the first undisturbed; after the first dies by SIGKILL the kernel has released the lock."""
    out = tmp_path / "runs"
    folder = run_folder(out)
    env = child_env(tmp_path / "home")
    first = subprocess.Popen(run_args(out, 100_000, every=5), cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (folder / "trainstate.pt").exists():
            assert first.poll() is None, first.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # The second run is this (pytest) process: a different process, and no second interpreter to start.
        second = CliRunner().invoke(app, run_args(out, 100_000, every=5)[3:])
        assert second.exit_code == 2, second.output
        lines = second.output.strip().splitlines()
        assert len(lines) == 1, second.output
        assert lines[0] == (
            f"error: run directory {folder} is in use by another fairbench process (pid {first.pid}); "
            "wait for it to finish or stop it, then rerun to resume"
        )
        assert first.poll() is None, "the first run keeps training"
        check_run_files(folder)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    with run_lock(folder):  # the dead process's lock went with it
        ckpt_step, state_step = check_run_files(folder)
        assert ckpt_step is not None and ckpt_step >= 5
