"""`fairbench sweep` interrupted: a worker killed mid-job (local pool, Ray, a Ray cluster of two nodes), Ctrl-C
stopping every worker, and a time limit that stops the sweep saving; each time a rerun resumes.

Jobs train a width-8 generator for a few steps on a copy of digits-bicolor without its quality section
(tests/unit/sweep/conftest.py), so each job takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.sweep import LocalPool, expand_grid, run_sweep
from fairbench.sweep.job import FAILED, PROGRESS, RETRY, STARTED
from tests.helpers.sweep import SMALL, Recorder, quiet, settings


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
