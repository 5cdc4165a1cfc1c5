"""The Ray backend: the same jobs as Ray tasks, on a local Ray instance or an existing cluster (`--address`).

Each job is one task reserving max(1, C // N) CPUs of the C in the cluster (N = --workers) and using as many
torch threads; with a CUDA device it also reserves a share of the cluster's GPUs. Progress comes back
through a Ray queue. A task whose worker process dies is retried by Ray (`max_retries`); training resumes
from its training state, so the retry finishes the same run. Errors of the job itself are not retried: they
are results (FAILED). On a cluster, `--out` should be a filesystem every node sees (training states, for
resuming); the result JSON comes back to the driver either way and is written there.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable

from fairbench.errors import FairbenchError
from fairbench.sweep.job_grid import SweepJob
from fairbench.sweep.job import FAILED, RETRY, STARTED, JobEvent, run_job, threads_per_worker

OnEvent = Callable[[JobEvent], None]


def _ray():
    try:
        import ray
    except ImportError:
        raise FairbenchError("--backend ray needs Ray: pip install 'fairbench[ray]'") from None
    return ray


def _ray_job(job: SweepJob, queue, threads: int) -> JobEvent:
    """What runs on a Ray worker (module level, so Ray pickles it by reference to the installed package)."""
    return run_job(job, queue.put_nowait, threads)


class RayBackend:
    name = "ray"

    def __init__(self, workers: int, address: str | None = None, retries: int = 1) -> None:
        _ray()  # a missing extra is a user error before anything starts
        self.workers, self.address, self.retries = max(1, workers), address, retries

    def run(self, jobs: list[SweepJob], on_event: OnEvent) -> None:
        if not jobs:
            return
        ray = _ray()
        from ray.util.queue import Queue

        started_here = not ray.is_initialized()
        if started_here:
            self._init(ray, jobs)
        refs: dict = {}
        queue = None
        try:
            resources = ray.cluster_resources()
            threads = max(1, int(resources.get("CPU", 1)) // self.workers)
            options: dict = {"num_cpus": threads, "max_retries": self.retries, "retry_exceptions": False}
            gpus = resources.get("GPU", 0)
            if jobs[0].settings.device.startswith("cuda") or (jobs[0].settings.device == "auto" and gpus):
                if not gpus:
                    raise FairbenchError("--device cuda: the Ray cluster has no GPUs")
                options["num_gpus"] = min(1.0, gpus / self.workers)
            queue = Queue()
            task = ray.remote(_ray_job).options(**options)
            refs = {task.remote(job, queue, threads): job for job in jobs}
            starts = Counter[str]()
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0.3, fetch_local=True)
                self._drain(queue, starts, on_event)  # before results, so a job's progress precedes its end
                for ref in ready:
                    job = refs.pop(ref)
                    try:
                        event = ray.get(ref)
                    except ray.exceptions.RayError as exc:  # its worker died more often than it may be retried
                        event = JobEvent(job.key, FAILED, text=_ray_failure(exc))
                    on_event(event)
        except KeyboardInterrupt:
            for ref in refs:  # Ray raises KeyboardInterrupt in each task: training saves, then stops
                ray.cancel(ref)
            _wait_briefly(ray, list(refs), 30.0)
            raise
        finally:
            if queue is not None:
                queue.shutdown()
            if started_here:
                ray.shutdown()

    def _init(self, ray, jobs: list[SweepJob]) -> None:
        kwargs: dict = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
        if self.address:
            kwargs["address"] = self.address
        else:  # a local instance sized like the local pool: N workers of max(1, C // N) threads each
            kwargs["num_cpus"] = self.workers * threads_per_worker(self.workers)
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            cause: BaseException | None = exc
            # Ray wraps the refusal in a RuntimeError whose text carries the AuthenticationError's traceback
            while cause is not None and not _refused_token(cause):
                cause = cause.__cause__ or cause.__context__
            if cause is not None:  # a cluster started with token authentication (Ray's default since 2.5x)
                raise FairbenchError(
                    f"the Ray cluster at {self.address} refused this driver's token; run with RAY_AUTH_MODE=token "
                    "and the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN"
                ) from None
            raise FairbenchError(f"cannot reach the Ray cluster at {self.address}: {exc}") from None

    @staticmethod
    def _drain(queue, starts: Counter[str], on_event: OnEvent) -> None:
        size = queue.qsize()
        if not size:
            return
        for event in queue.get_nowait_batch(size):
            if event.kind == STARTED:
                starts[event.key] += 1
                if starts[event.key] > 1:  # Ray retried the task: its previous worker died mid-job
                    on_event(JobEvent(event.key, RETRY, text="worker died"))
            on_event(event)


def _ray_failure(exc: Exception) -> str:
    name = type(exc).__name__
    if "WorkerCrashed" in name or "ActorDied" in name or "NodeDied" in name:
        return "worker died (retries used up)"
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0]}" if text else name


def _wait_briefly(ray, refs: list, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while refs and time.monotonic() < deadline:
        _, refs = ray.wait(refs, num_returns=len(refs), timeout=0.5)


def _refused_token(exc: BaseException) -> bool:
    return type(exc).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(exc)
