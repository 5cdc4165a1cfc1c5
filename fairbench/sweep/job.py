"""One job, wherever it runs: train (resuming from the training state), score, return the result JSON.

The job reports `JobEvent`s through whatever channel its backend gives it (a pipe, a Ray queue, a plain
callback); they are small plain dataclasses so every channel can carry them. The result comes back as JSON
text and the driver writes it, so a sweep on a cluster collects its results on the driver's disk.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from fairbench.errors import FairbenchError
from fairbench.sweep.job_grid import SweepJob

# kinds: "started" (text: the process id), "progress" (phase, done, total), "done" (text: result JSON),
# "failed" (text: one-line error), "retry" (text: why; sent by backends when a worker died mid-job)
STARTED, PROGRESS, DONE, FAILED, RETRY = "started", "progress", "done", "failed", "retry"


@dataclass(frozen=True)
class JobEvent:
    key: str
    kind: str
    phase: str = ""  # "train" or "score" for progress
    done: int = 0
    total: int = 0
    text: str = ""


Emit = Callable[[JobEvent], None]


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """N workers on C cores: max(1, C // N) torch threads each, so workers never fight over cores."""
    cores = cores or usable_cores()
    return max(1, cores // max(1, workers))


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_job(job: SweepJob, emit: Emit, threads: int) -> JobEvent:
    """Train and score `job`; returns its DONE event (the result JSON) or FAILED event (a one-line error).

    Only errors of the job itself become FAILED; an interrupt (Ctrl-C, SIGTERM: TrainingInterrupted after the
    checkpoint is saved) propagates, so the backend can tell a stopped job from a broken one.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    with threadpool_limits(threads):  # numpy's and scipy's BLAS too (FID's matrix square root)
        return _train_and_score(job, emit)


def _train_and_score(job: SweepJob, emit: Emit) -> JobEvent:
    from fairbench.results import dumps
    from fairbench.scoring import ScoreOptions, score_checkpoint
    from fairbench.task_registry import get_task
    from fairbench.training import RunOptions, TrainingInterrupted, train

    emit(JobEvent(job.key, STARTED, text=str(os.getpid())))
    throttle = _Throttle(emit, job.key)
    settings = job.settings
    try:
        spec = get_task(job.task)
        options = RunOptions(
            method=job.method, task=spec, seed=job.seed, steps=job.steps, out=settings.out,
            data_root=settings.data_root, device=settings.device, batch_size=settings.batch_size,
            checkpoint_every=settings.checkpoint_every, snapshot_every=settings.snapshot_every,
            overrides=dict(job.overrides),
        )
        checkpoint = train(options, lambda step, total, logs: throttle("train", step, total))
        score_options = ScoreOptions(
            n_samples=settings.samples, device=settings.device,
            data_root=settings.data_root, progress=lambda stage, done, total: throttle(stage, done, total),
        )
        result = score_checkpoint(checkpoint, score_options, task=spec)
    except TrainingInterrupted:  # an Exception, but not the job's fault: stop, do not report a failure
        raise
    except FairbenchError as exc:
        return JobEvent(job.key, FAILED, text=one_line(str(exc)))
    except Exception as exc:  # a bug or a resource problem (out of memory): name its type
        return JobEvent(job.key, FAILED, text=one_line(f"{type(exc).__name__}: {exc}"))
    return JobEvent(job.key, DONE, text=dumps(result))


def one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "failed without a message"


class _Throttle:
    """Progress at most ~4 times a second per job (and always at a phase change or the end)."""

    def __init__(self, emit: Emit, key: str, interval: float = 0.25) -> None:
        self.emit, self.key, self.interval = emit, key, interval
        self.last, self.phase = 0.0, ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase == self.phase and done < total and now - self.last < self.interval:
            return
        self.last, self.phase = now, phase
        self.emit(JobEvent(self.key, PROGRESS, phase, done, total))
