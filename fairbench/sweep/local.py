"""Backends on this machine: `serial` (in this process, one job at a time) and `local` (a process pool).

The pool is a few lines of its own rather than concurrent.futures: a dead worker (killed, out of memory)
breaks a whole ProcessPoolExecutor and does not say which job it was running, while here each worker runs
one job at a time over its own pipe, so the job of a dead worker is known and retried (`retries` times), and
the other workers go on. Workers are spawned, never forked: a forked child inherits torch's thread pools and
locks in whatever state the parent had them. Each worker writes its stdout and stderr to a log file under
the sweep's out dir, so warnings never tear the live view.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path

from fairbench.sweep.job_grid import SweepJob
from fairbench.sweep.job import DONE, FAILED, RETRY, JobEvent, run_job

OnEvent = Callable[[JobEvent], None]
LOG_FOLDER = "sweep-logs"


class SerialBackend:
    """Every job in this process, in order: no start-up cost, tracebacks with --debug, no crash isolation."""

    name = "serial"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads

    def run(self, jobs: list[SweepJob], on_event: OnEvent) -> None:
        for job in jobs:
            on_event(run_job(job, on_event, self.threads))


@dataclass
class _Worker:
    index: int
    process: multiprocessing.process.BaseProcess
    conn: Connection
    job: SweepJob | None = None


class LocalPool:
    """`workers` spawned processes; a job whose worker dies is retried on a fresh one, `retries` times."""

    name = "local"

    def __init__(self, workers: int, threads: int, retries: int = 1, log_dir: Path | None = None) -> None:
        self.workers, self.threads, self.retries, self.log_dir = max(1, workers), threads, retries, log_dir
        self._started = 0

    def run(self, jobs: list[SweepJob], on_event: OnEvent) -> None:
        context = multiprocessing.get_context("spawn")
        queue, attempts = deque(jobs), Counter[str]()
        pool: list[_Worker] = []
        interrupted = False
        try:
            while queue or any(w.job is not None for w in pool):
                while queue:
                    worker = next((w for w in pool if w.job is None), None)
                    if worker is None:
                        if len(pool) >= self.workers:
                            break
                        worker = self._spawn(context)
                        pool.append(worker)
                    worker.job = queue.popleft()
                    attempts[worker.job.key] += 1
                    worker.conn.send(worker.job)
                wait([w.conn for w in pool] + [w.process.sentinel for w in pool], timeout=1.0)
                for worker in list(pool):
                    self._drain(worker, on_event)
                    if worker.process.is_alive():
                        continue
                    pool.remove(worker)
                    worker.conn.close()
                    job = worker.job
                    if job is None:
                        continue
                    why = f"worker died (exit code {worker.process.exitcode})"
                    if attempts[job.key] <= self.retries:
                        on_event(JobEvent(job.key, RETRY, text=why))
                        queue.appendleft(job)
                    else:
                        on_event(JobEvent(job.key, FAILED, text=why))
        except BaseException:
            interrupted = True
            raise
        finally:
            _shut_down(pool, interrupted)

    def _spawn(self, context) -> _Worker:
        index = self._started
        self._started += 1
        parent, child = context.Pipe()
        log = str(self.log_dir / f"worker-{index}.log") if self.log_dir is not None else None
        process = context.Process(target=_worker_main, args=(child, self.threads, log), daemon=True)
        process.start()
        child.close()
        return _Worker(index, process, parent)

    @staticmethod
    def _drain(worker: _Worker, on_event: OnEvent) -> None:
        try:
            while worker.conn.poll():
                event: JobEvent = worker.conn.recv()
                if event.kind in (DONE, FAILED):
                    worker.job = None
                on_event(event)
        except (EOFError, OSError):  # the worker is gone; what it sent before is already handled
            pass


def _shut_down(pool: list[_Worker], interrupted: bool) -> None:
    """Idle workers are told to stop. After an interrupt, busy ones are asked too (SIGTERM: training saves its
    checkpoint first, fairbench.training), given time to finish writing, and killed only then."""
    for worker in pool:
        if worker.job is None:
            try:
                worker.conn.send(None)
            except OSError:
                pass
    if interrupted:
        _join_all(pool, 5.0)  # a terminal's Ctrl-C reached the workers too: let them save on their own
        for worker in pool:
            if worker.process.is_alive():
                worker.process.terminate()
    _join_all(pool, 60.0)
    for worker in pool:
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.conn.close()


def _join_all(pool: list[_Worker], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for worker in pool:
        worker.process.join(max(0.0, deadline - time.monotonic()))


def _worker_main(conn: Connection, threads: int, log: str | None) -> None:
    """A spawned worker: run the jobs it is sent until it is sent None. Exit 130 when interrupted."""
    if log is not None:
        os.makedirs(os.path.dirname(log), exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
    from fairbench.training import TrainingInterrupted

    try:
        while True:
            job = conn.recv()
            if job is None:
                return
            conn.send(run_job(job, conn.send, threads))
    except (KeyboardInterrupt, TrainingInterrupted, EOFError):
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        os._exit(130)
