"""`fairbench sweep`: a grid of train + score jobs on one machine or a Ray cluster, resumable, with one view.

One module each:

- `grid`: `expand_grid` turns methods x tasks x seeds x `--set` values into checked `SweepJob`s, each with
  its own run folder (`fairbench.training.run_dir`); `finished` says whether a job's result is on disk,
  `board_result` whether a committed results folder (`--board`) holds it already;
- `job`: `run_job`, what a worker does (train, resuming; score; return the result JSON), reporting `JobEvent`s;
- `local`: the `serial` backend (in process) and the `local` process pool (spawned workers, a dead worker's
  job retried); `ray_backend`: the same jobs as Ray tasks (optional extra `ray`);
- `view`: job states and their live table (terminal) or periodic lines (logs);
- `run`: `run_sweep`, the driver: skip finished jobs, run the rest, write results, build the leaderboard.
- `plan`: `--plan`, each job's state (done, saved step, not started, in use) read from its folder, running nothing.
"""

from fairbench.sweep.job_grid import SweepJob, SweepSettings, expand_grid, finished, split_values
from fairbench.sweep.job import JobEvent, run_job, threads_per_worker
from fairbench.sweep.local import LocalPool, SerialBackend
from fairbench.sweep.run import SweepInterrupted, SweepOutcome, SweepTimeLimit, run_sweep

BACKENDS = ("local", "ray", "serial")


def make_backend(name: str, workers: int, address: str | None = None, retries: int = 1, log_dir=None):
    """`local` (a pool of `workers` processes), `ray` (local instance, or the cluster at `address`), `serial`."""
    from fairbench.errors import FairbenchError

    if workers < 1:
        raise FairbenchError(f"--workers must be positive, got {workers}")
    if retries < 0:
        raise FairbenchError(f"--retries must be >= 0, got {retries}")
    if address is not None and name != "ray":
        raise FairbenchError("--address names a Ray cluster; use it with --backend ray")
    if name == "local":
        return LocalPool(workers, threads_per_worker(workers), retries, log_dir)
    if name == "ray":
        from fairbench.sweep.ray_backend import RayBackend

        return RayBackend(workers, address, retries)
    if name == "serial":
        return SerialBackend(threads_per_worker(1))
    raise FairbenchError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "JobEvent",
    "LocalPool",
    "SerialBackend",
    "SweepInterrupted",
    "SweepJob",
    "SweepOutcome",
    "SweepSettings",
    "SweepTimeLimit",
    "expand_grid",
    "finished",
    "make_backend",
    "run_job",
    "run_sweep",
    "split_values",
    "threads_per_worker",
]
