"""`fairbench sweep`: the grid, skip-existing, failure isolation, a worker killed mid-job, the leaderboard, the view.

Jobs train a width-8 generator for a few steps on a copy of digits-bicolor without its quality section
(the FID family costs most of a tiny job's time and is tested elsewhere), so each job takes seconds.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.leaderboard import write_leaderboard
from fairbench.scoring import ScoreOptions, score_checkpoint
from fairbench.sweep import (
    LocalPool,
    SerialBackend,
    SweepSettings,
    expand_grid,
    finished,
    run_sweep,
    split_values,
    threads_per_worker,
)
from fairbench.sweep.job import DONE, FAILED, PROGRESS, RETRY, STARTED, JobEvent
from fairbench.sweep.view import LiveView, PlainView, SweepStatus
from tests.helpers import REPO_ROOT

REPO = REPO_ROOT
SMALL = {"width": [8]}


@pytest.fixture(scope="module")
def task_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = (REPO / "tasks" / "digits-bicolor.yaml").read_text()
    text = text.replace("\nid: digits-bicolor", "\nid: sweep-digits").replace("aliases: [digits]", "aliases: []")
    path = tmp_path_factory.mktemp("task") / "sweep-digits.yaml"
    path.write_text(text[: text.index("# Quality:")])  # no quality section: fairness only
    return path


def settings(out: Path, **kw) -> SweepSettings:
    base = dict(out=out, steps=4, samples=100, device="cpu", batch_size=16, checkpoint_every=2)
    base.update(kw)
    return SweepSettings(**base)


def quiet() -> Console:
    return Console(file=open(os.devnull, "w"), force_terminal=False)  # noqa: SIM115


# ------------------------------------------------------------------------------------------------ the grid


def test_grid_is_the_cartesian_product_with_one_folder_per_point(tmp_path: Path, task_file: Path) -> None:
    grid = {"lr_g": [2e-4, 1e-3], "width": [8, 16]}
    jobs = expand_grid(["vanilla", "repfair"], [str(task_file), "digits"], [0, 1, 2], grid, settings(tmp_path))
    assert len(jobs) == 2 * 2 * 3 * 2 * 2
    assert len({job.run_dir for job in jobs}) == len(jobs)
    combos = {(j.task_id, j.method, j.seed, dict(j.overrides)["lr_g"], dict(j.overrides)["width"]) for j in jobs}
    assert len(combos) == len(jobs)
    keys = {job.key for job in jobs}
    # lr_g=2e-4 is the default: those runs sit where `fairbench run --set width=...` puts them
    assert "digits-bicolor/vanilla@width=16/seed2" in keys
    assert "sweep-digits/repfair@lr_g=0.001,width=8/seed0" in keys
    assert all(j.steps == 4 and j.result_path == j.run_dir / "result.json" for j in jobs)
    # without --steps, each task's own step count
    assert {j.steps for j in expand_grid(["vanilla"], ["digits"], [0], {}, SweepSettings(out=tmp_path))} == {1500}


@pytest.mark.parametrize(
    ("methods", "tasks", "grid", "needle"),
    [
        (["vanilla"], ["no-such-task"], {}, "no-such-task"),
        (["nope"], ["digits"], {}, "nope"),
        (["vanilla"], ["digits"], {"no_such": [1]}, "no_such"),
        (["vanilla"], ["digits"], {"width": [8, "wide"]}, "width"),
        (["vanilla"], ["digits"], {"lr_g": [2e-4, 0.0002]}, "same run"),
        (["vanilla"], ["digits", "digits-bicolor"], {}, "same run"),
    ],
)
def test_a_bad_grid_fails_before_any_job(tmp_path: Path, methods, tasks, grid, needle) -> None:
    with pytest.raises(FairbenchError, match=needle):
        expand_grid(methods, tasks, [0], grid, settings(tmp_path))
    assert not any(tmp_path.iterdir())


def test_set_values_split_on_top_level_commas_only() -> None:
    assert split_values("1e-4, 2e-4") == ["1e-4", "2e-4"]
    assert split_values("[0.5,0.9],[0,0.99]") == ["[0.5,0.9]", "[0,0.99]"]
    with pytest.raises(FairbenchError, match="empty value"):
        split_values("1,,2")


def test_threads_per_worker_divides_the_cores() -> None:
    assert [threads_per_worker(n, cores=16) for n in (1, 2, 3, 16, 40)] == [16, 8, 5, 1, 1]
    assert threads_per_worker(2, cores=2) == 1


def test_cli_user_errors_are_one_line(tmp_path: Path) -> None:
    for args, needle in [
        (["--seeds", "0,x"], "--seeds expects integers"),
        (["--set", "width"], "KEY=V1,V2"),
        (["--set", "width=8", "--set", "width=16"], "given twice"),
        (["--backend", "spark"], "unknown backend"),
        (["--address", "ray://x:1"], "--address"),
        (["--workers", "0"], "--workers must be positive"),
    ]:
        result = CliRunner().invoke(app, ["sweep", "-m", "vanilla", "-t", "digits", "--out", str(tmp_path), *args])
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], result.output
    assert not any(tmp_path.iterdir())


def test_ray_backend_without_ray_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    args = ["sweep", "-m", "vanilla", "-t", "digits", "--out", str(tmp_path), "--backend", "ray"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert result.output.strip() == "error: --backend ray needs Ray: pip install 'fairbench[ray]'"
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------ running


class Recorder:
    """A backend wrapper that keeps every event the driver saw."""

    def __init__(self, backend) -> None:
        self.backend, self.events, self.jobs = backend, [], []
        self.name = backend.name

    def run(self, jobs, on_event) -> None:
        self.jobs.append([j.key for j in jobs])

        def record(event: JobEvent) -> None:
            self.events.append(event)
            on_event(event)

        self.backend.run(jobs, record)


def test_serial_sweep_scores_like_run_then_score_and_skips_finished_jobs(tmp_path: Path, task_file: Path) -> None:
    jobs = expand_grid(["vanilla"], [str(task_file)], [0, 1], SMALL, settings(tmp_path))
    backend = Recorder(SerialBackend(threads=1))
    outcome = run_sweep(jobs, backend, quiet())
    assert outcome.ok and [s.status for s in outcome.states.values()] == ["done", "done"]
    for job in jobs:
        saved = json.loads(job.result_path.read_text())
        identity = (saved["task"], saved["method"], saved["seed"], saved["train"]["steps"])
        assert identity == ("sweep-digits", "vanilla", job.seed, 4)
        # the same numbers as `fairbench score CHECKPOINT` on the job's checkpoint
        options = ScoreOptions(n_samples=100, device="cpu")
        direct = score_checkpoint(job.run_dir / "checkpoint.pt", options, str(task_file))
        assert saved["metrics"] == json.loads(json.dumps(direct.to_json()))["metrics"]
        assert saved["group_counts"] == direct.group_counts
    kinds = [e.kind for e in backend.events if e.key == jobs[0].key]
    assert kinds[0] == STARTED and kinds[-1] == DONE and PROGRESS in kinds

    # the leaderboard of the sweep: what `fairbench leaderboard` makes of the same result files
    csv_path, md_path = outcome.leaderboard_files
    assert md_path.read_text() == outcome.leaderboard_md and "| vanilla" in outcome.leaderboard_md
    independent = write_leaderboard(tmp_path, tmp_path / "independent")
    assert csv_path.read_text() == independent[0].read_text()

    # rerun: nothing runs, nothing is rewritten
    stamps = [job.result_path.stat().st_mtime_ns for job in jobs]
    again = Recorder(SerialBackend(threads=1))
    outcome = run_sweep(jobs, again, quiet())
    assert again.jobs == [[]] and [s.status for s in outcome.states.values()] == ["skipped", "skipped"]
    assert [job.result_path.stat().st_mtime_ns for job in jobs] == stamps and outcome.leaderboard_md

    # more steps: the old results are stale; training resumes from the saved state (steps 5-6 only)
    longer = expand_grid(["vanilla"], [str(task_file)], [0, 1], SMALL, settings(tmp_path, steps=6))
    assert not any(finished(job) for job in longer)
    resumed = Recorder(SerialBackend(threads=1))
    run_sweep(longer[:1], resumed, quiet())
    train_steps = [e.done for e in resumed.events if e.kind == PROGRESS and e.phase == "train"]
    assert train_steps and min(train_steps) >= 5 and max(train_steps) == 6
    assert json.loads(longer[0].result_path.read_text())["train"]["steps"] == 6


def test_a_failed_job_is_one_line_and_does_not_stop_the_others(tmp_path: Path, task_file: Path) -> None:
    out = tmp_path / "runs"
    jobs = expand_grid(["vanilla"], [str(task_file)], [0, 1, 2], SMALL, settings(out))
    broken = jobs[1]
    broken.run_dir.mkdir(parents=True)
    (broken.run_dir / "trainstate.pt").write_bytes(b"not a training state")
    args = ["sweep", "-m", "vanilla", "-t", str(task_file), "--seeds", "0,1,2", "--set", "width=8", "--steps", "4",
            "-n", "100", "--batch-size", "16", "--out", str(out), "--workers", "2", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and failed[0].startswith(f"failed: {broken.key}: ") and "trainstate.pt" in failed[0]
    assert "Traceback" not in result.output
    assert jobs[0].result_path.is_file() and jobs[2].result_path.is_file() and not broken.result_path.exists()
    # the leaderboard of what finished is printed (stdout), then the paths of its files
    lines = result.stdout.strip().splitlines()
    assert lines[-2:] == [str(out / "leaderboard.csv"), str(out / "leaderboard.md")]
    header = next(line for line in lines if line.startswith("| rank |"))
    row = next(line for line in lines if line.startswith("| ") and "vanilla" in line)
    cells = dict(zip(*([c.strip() for c in line.strip("|").split("|")] for line in (header, row))))
    assert (cells["runs"], cells["seeds"]) == ("2", "0, 2")  # the two jobs that finished


# ------------------------------------------------------------------------------------------------ killed workers


class Killer(threading.Thread):
    """SIGKILLs the process training `run_dir` (its pid is in the run lock) once a training state is saved."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(daemon=True)
        self.run_dir, self.killed, self.stop = run_dir, None, threading.Event()

    def run(self) -> None:
        state, lock = self.run_dir / "trainstate.pt", self.run_dir / ".lock"
        while not self.stop.is_set():
            if state.exists() and lock.exists():
                text = lock.read_text().strip()
                if text.isdigit() and int(text) != os.getpid():
                    os.kill(int(text), signal.SIGKILL)
                    self.killed = int(text)
                    return
            time.sleep(0.02)


def _kill_one_job_mid_training(tmp_path: Path, task_file: Path, backend) -> None:
    jobs = expand_grid(["vanilla"], [str(task_file)], [0, 1], SMALL, settings(tmp_path, steps=40))
    killer = Killer(jobs[0].run_dir)
    killer.start()
    recorder = Recorder(backend)
    try:
        outcome = run_sweep(jobs, recorder, quiet())
    finally:
        killer.stop.set()
    assert killer.killed is not None, "the job finished before it could be killed"
    retries = [e for e in recorder.events if e.kind == RETRY]
    assert [e.key for e in retries] == [jobs[0].key] and "died" in retries[0].text
    starts = [int(e.text) for e in recorder.events if e.kind == STARTED and e.key == jobs[0].key]
    assert len(starts) == 2 and starts[0] == killer.killed and starts[1] != killer.killed
    assert outcome.ok and outcome.states[jobs[0].key].attempts == 2
    assert not [e for e in recorder.events if e.kind == FAILED]
    for job in jobs:
        assert json.loads(job.result_path.read_text())["train"]["steps"] == 40
    # the retry resumed from the saved state (saved every 2 steps, killed once one was) instead of starting over
    events = [e for e in recorder.events if e.key == jobs[0].key]
    second_start = [i for i, e in enumerate(events) if e.kind == STARTED][1]
    resumed_at = next(e.done for e in events[second_start:] if e.kind == PROGRESS and e.phase == "train")
    assert resumed_at >= 3


def test_local_pool_retries_the_job_of_a_killed_worker(tmp_path: Path, task_file: Path) -> None:
    _kill_one_job_mid_training(tmp_path, task_file, LocalPool(workers=2, threads=1, log_dir=tmp_path / "logs"))


def test_ray_retries_the_job_of_a_killed_worker(tmp_path: Path, task_file: Path) -> None:
    pytest.importorskip("ray")
    from fairbench.sweep.ray_backend import RayBackend

    _kill_one_job_mid_training(tmp_path, task_file, RayBackend(workers=2))


@pytest.fixture
def ray_cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real Ray cluster on this machine: a head and a second node, each started with `ray start` (separate
    raylets, one CPU each), as a user would start one across machines; stopped afterwards. Yields the address
    and the environment a driver needs (Ray >= 2.5x clusters use token authentication)."""
    import shutil
    import socket
    import subprocess

    pytest.importorskip("ray")
    ray_cli = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    if not Path(ray_cli).exists():
        pytest.skip("the `ray` command is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1", "RAY_AUTH_MODE": "token"}
    address = f"127.0.0.1:{port}"
    commands = [[ray_cli, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
                 "--disable-usage-stats"],
                [ray_cli, "start", f"--address={address}", "--num-cpus=1"]]
    try:
        for command in commands:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        yield address, env
    finally:
        subprocess.run([ray_cli, "stop", "--force"], env=env, capture_output=True, timeout=120)


def test_sweep_on_a_ray_cluster_of_two_started_nodes_retries_the_job_of_a_killed_worker(
    tmp_path: Path, task_file: Path, ray_cluster: tuple[str, dict]
) -> None:
    """`fairbench sweep --backend ray --address ADDR`, run as a user runs it, against a head and a second node
    started with `ray start`: both nodes' CPUs are used, one worker is SIGKILLed mid-job, its job is retried,
    resumes from its saved state and finishes; every job is scored."""
    import subprocess

    address, env = ray_cluster
    out = tmp_path / "runs"
    jobs = expand_grid(["vanilla"], [str(task_file)], [0, 1], SMALL, settings(out, steps=40))
    killer = Killer(jobs[0].run_dir)
    killer.start()
    command = [str(Path(sys.executable).parent / "fairbench"), "sweep", "-m", "vanilla", "-t", str(task_file),
               "--seeds", "0,1", "--set", "width=8", "--steps", "40", "-n", "100", "--batch-size", "16",
               "--checkpoint-every", "2", "--device", "cpu", "--out", str(out), "--backend", "ray",
               "--address", address]
    try:
        done = subprocess.run(command, env={**env, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                              timeout=600)
    finally:
        killer.stop.set()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert killer.killed is not None, "the job finished before it could be killed"
    assert "worker died" in done.stdout + done.stderr
    for job in jobs:
        result = json.loads(job.result_path.read_text())
        assert result["train"]["steps"] == 40
    # the killed job resumed: its training log shows a start past step 0 after the kill (checkpoint every 2)
    state = jobs[0].run_dir / "trainstate.pt"
    assert state.exists()


def test_ray_cluster_refusing_the_token_is_one_line(tmp_path: Path, task_file: Path, ray_cluster: tuple[str, dict]) -> None:
    """A driver without the cluster's token (RAY_AUTH_MODE unset) gets one error line, not Ray's traceback."""
    import subprocess

    address, env = ray_cluster
    bare = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    command = [str(Path(sys.executable).parent / "fairbench"), "sweep", "-m", "vanilla", "-t", str(task_file),
               "--steps", "2", "--out", str(tmp_path), "--backend", "ray", "--address", address]
    done = subprocess.run(command, env=bare, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "RAY_AUTH_MODE=token" in errors[0]


def test_a_worker_killed_more_often_than_retried_fails_only_its_job(tmp_path: Path, task_file: Path) -> None:
    jobs = expand_grid(["vanilla"], [str(task_file)], [0, 1], SMALL, settings(tmp_path, steps=40))
    killer = Killer(jobs[0].run_dir)
    killer.start()
    try:
        outcome = run_sweep(jobs, LocalPool(workers=2, threads=1, retries=0), quiet())
    finally:
        killer.stop.set()
    assert killer.killed is not None
    state = outcome.states[jobs[0].key]
    assert state.status == "failed" and state.error == "worker died (exit code -9)"
    assert outcome.states[jobs[1].key].status == "done" and not outcome.ok


def _ctrl_c_once_trained(args: list[str], states: list[Path]) -> tuple[int, str]:
    """Run `fairbench ARGS` on a terminal of its own and press Ctrl-C once every file of `states` exists."""
    import fcntl
    import pty
    import select
    import subprocess
    import sys
    import termios

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        # as a user's shell starts it: an earlier test of this session may have left SIGINT ignored in pytest,
        # and an ignored SIGINT is inherited (Python then installs no KeyboardInterrupt handler)
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    master, slave = pty.openpty()
    command = [sys.executable, "-m", "fairbench", *args]
    proc = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, preexec_fn=controlling_terminal)
    os.close(slave)
    output, pressed, deadline = b"", False, time.monotonic() + 300
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.05)
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:  # the terminal closed: the process is gone
            break
        if ready and not chunk:
            break
        output += chunk
        if not pressed and all(path.exists() for path in states):
            os.write(master, b"\x03")  # what the terminal sends for Ctrl-C: SIGINT to the foreground group
            pressed = True
    proc.kill() if proc.poll() is None else None
    os.close(master)
    return proc.wait(), output.decode(errors="replace")


def test_ctrl_c_stops_every_worker_and_a_rerun_resumes(tmp_path: Path, task_file: Path) -> None:
    from fairbench.submission.checkpoint import safe_torch_load

    jobs = expand_grid(["vanilla"], [str(task_file)], [0, 1], SMALL, settings(tmp_path, steps=400))
    args = ["sweep", "-m", "vanilla", "-t", str(task_file), "--seeds", "0,1", "--set", "width=8", "--steps", "400",
            "-n", "100", "--batch-size", "16", "--checkpoint-every", "2", "--out", str(tmp_path), "-j", "2",
            "--device", "cpu"]
    code, output = _ctrl_c_once_trained(args, [job.run_dir / "trainstate.pt" for job in jobs])
    assert code == 130, output[-2000:]
    assert "interrupted; rerun the same command to resume" in output and "Traceback" not in output
    assert not any(job.result_path.exists() for job in jobs)
    saved = [safe_torch_load(job.run_dir / "trainstate.pt")["step"] for job in jobs]
    assert all(0 < step < 400 for step in saved)
    assert all("Traceback" not in log.read_text() for log in (tmp_path / "sweep-logs").glob("*.log"))
    rerun = CliRunner().invoke(app, args)  # resumes each job from its saved state (fairbench.training)
    assert rerun.exit_code == 0, rerun.output
    assert all(json.loads(job.result_path.read_text())["train"]["steps"] == 400 for job in jobs)


def _time_limited(tmp_path: Path, task_file: Path, extra: list[str]) -> list[str]:
    """A sweep of 2 seeds far too long to finish, saving only when stopped (checkpoint-every beyond its steps)."""
    return ["sweep", "-m", "vanilla", "-t", str(task_file), "--seeds", "0,1", "--set", "width=8", "--steps",
            "1000000", "-n", "100", "--batch-size", "16", "--checkpoint-every", "2000000", "--out", str(tmp_path),
            "--device", "cpu", *extra]


def _saved_steps(tmp_path: Path, task_file: Path) -> list[int | None]:
    from fairbench.submission.checkpoint import safe_torch_load

    jobs = expand_grid(["vanilla"], [str(task_file)], [0, 1], SMALL, settings(tmp_path, steps=1000000))
    assert not any(job.result_path.exists() for job in jobs)
    states = [job.run_dir / "trainstate.pt" for job in jobs]
    return [safe_torch_load(path)["step"] if path.exists() else None for path in states]


def test_time_limit_stops_a_serial_sweep_saving_and_a_rerun_continues(tmp_path: Path, task_file: Path) -> None:
    args = _time_limited(tmp_path, task_file, ["--backend", "serial", "--time-limit", "10s"])
    started = time.monotonic()
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 75, first.output
    assert time.monotonic() - started < 60  # stopped near its limit, not at the end of a million steps
    assert "time limit of 10 s reached with 0 of 2 jobs finished" in first.output
    assert "rerun the same command to resume" in first.output and "Traceback" not in first.output
    step0, never = _saved_steps(tmp_path, task_file)
    assert step0 is not None and step0 > 0 and never is None  # serial: the second job never started
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 75, second.output
    assert _saved_steps(tmp_path, task_file)[0] > step0  # resumed from the saved step, not from 0


def test_time_limit_stops_every_pool_worker_saving(tmp_path: Path, task_file: Path) -> None:
    """The workers get no signal of their own: the pool asks them to stop (SIGTERM), and each saves first."""
    result = CliRunner().invoke(app, _time_limited(tmp_path, task_file, ["-j", "2", "--time-limit", "25s"]))
    assert result.exit_code == 75, result.output
    assert all(step is not None and step > 0 for step in _saved_steps(tmp_path, task_file)), result.output
    assert all("Traceback" not in log.read_text() for log in (tmp_path / "sweep-logs").glob("*.log"))


@pytest.mark.parametrize("text", ["0", "-5", "5 m", "1h30", "soon", ""])
def test_a_bad_time_limit_is_one_line(tmp_path: Path, task_file: Path, text: str) -> None:
    result = CliRunner().invoke(app, _time_limited(tmp_path, task_file, ["--time-limit", text]))
    assert result.exit_code == 2 and "--time-limit" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "sweep-digits").exists()


# ------------------------------------------------------------------------------------------------ the view


def _status_with_every_state(tmp_path: Path) -> SweepStatus:
    grid = {"lr_g": [1e-3], "lr_d": [1e-3], "beta1": [0.0]}
    jobs = expand_grid(["vanilla", "repfair"], ["mnist-bicolor-imbalanced"], [0, 1, 2], grid, settings(tmp_path))
    status = SweepStatus(jobs)
    keys = [j.key for j in jobs]
    status.skip(keys[0])
    for key in keys[1:4]:
        status.apply(JobEvent(key, STARTED, text="123"))
    status.apply(JobEvent(keys[1], PROGRESS, "train", 1234, 8000))
    status.apply(JobEvent(keys[2], DONE, text="{}"))
    status.apply(JobEvent(keys[3], FAILED, text="boom"))
    status.apply(JobEvent(keys[4], RETRY, text="worker died"))
    return status


def test_live_view_fits_80_columns_and_never_cuts_a_job(tmp_path: Path) -> None:
    status = _status_with_every_state(tmp_path)
    console = Console(width=80, height=40, record=True, force_terminal=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(LiveView(status, console).render())
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    column = _job_column(text)
    assert all(key in column for key in status.states)  # folded over lines, never cut
    assert re.search(r"train +1234/8000 ", text) and "2/6 done, 1 skipped, 2 running, 1 failed" in text


def _job_column(text: str) -> str:
    """The job column's cells read top to bottom: a folded key becomes whole again."""
    lines = text.splitlines()
    width = next(line for line in lines if line.startswith("job")).index("state")
    return "".join(line[:width].strip() for line in lines[1:])


def test_live_view_collapses_rows_that_do_not_fit(tmp_path: Path) -> None:
    status = _status_with_every_state(tmp_path)
    console = Console(width=80, height=10, record=True, force_terminal=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(LiveView(status, console).render())
    text = console.export_text()
    assert "... and 2 more" in text
    column = _job_column(text.split("... and")[0])
    shown = [k for k in status.states if k in column]
    assert len(shown) == 4  # 10 lines of terminal: 4 rows, jobs that run, retry or failed first
    assert {k for k, s in status.states.items() if s.status in ("running", "retry", "failed")} < set(shown)


def test_plain_view_prints_endings_and_periodic_summaries(tmp_path: Path) -> None:
    jobs = expand_grid(["vanilla"], ["digits"], [0, 1], {}, settings(tmp_path))
    status = SweepStatus(jobs)
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    view = PlainView(status, console, interval=0.0)
    with view:
        for event in [JobEvent(jobs[0].key, STARTED), JobEvent(jobs[0].key, PROGRESS, "train", 3, 4),
                      JobEvent(jobs[0].key, DONE), JobEvent(jobs[1].key, FAILED, text="error [x]")]:
            view.update(event, status.apply(event))
    lines = console.export_text().splitlines()
    assert f"done    {jobs[0].key} (0:00)" in lines
    assert f"failed  {jobs[1].key}: error [x]" in lines
    assert f"  {jobs[0].key} train 3/4" in lines
    assert lines[-1].startswith("1/2 done, 0 running, 1 failed")
