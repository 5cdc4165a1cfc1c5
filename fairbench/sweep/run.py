"""Run a sweep: skip finished jobs, run the rest on a backend, write each result, build the sweep's leaderboard.

The driver alone writes result files (atomically, `<run dir>/result.json`, where `fairbench score` puts
them): a job counts as finished exactly when its result is on disk, so a sweep stopped at any moment
(Ctrl-C, a crash, a lost node) is resumed by running it again. Jobs already finished are skipped, as are, given
a results folder (`--board`), jobs whose result it holds already; the others resume their training from its
last saved state.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rich.console import Console

from fairbench import atomic
from fairbench.errors import FairbenchError
from fairbench.board import build_leaderboard, read_result, render_csv, render_markdown
from fairbench.sweep.job_grid import SweepJob, existing_result
from fairbench.sweep.job import DONE, FAILED, JobEvent
from fairbench.sweep.view import SKIPPED, JobState, SweepStatus, make_view
from fairbench.training import TrainingInterrupted, _sigterm_as_interrupt


class Backend(Protocol):
    name: str

    def run(self, jobs: list[SweepJob], on_event: Callable[[JobEvent], None]) -> None: ...


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM: running jobs saved their training state; rerunning the sweep resumes it."""


class SweepTimeLimit(SweepInterrupted):
    """The sweep's time limit passed: stopped like Ctrl-C (running jobs saved their state), so a scheduler's
    allocation, or any fixed slot of machine time, ends with nothing lost and the same command resumes."""


@dataclass
class _Deadline:
    reached: bool = False


@contextmanager
def _time_limit(seconds: float | None, deadline: _Deadline) -> Iterator[None]:
    """After `seconds`, interrupt the main thread as Ctrl-C does (every backend already stops on that, saving)
    and mark `deadline` reached, so the interrupt can be told from a Ctrl-C."""
    if seconds is None:
        yield
        return

    def handler(signum, frame):  # noqa: ARG001
        deadline.reached = True
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGALRM, handler)
    except ValueError:  # signals reach the main thread only
        raise FairbenchError("a sweep with a time limit must run in the main thread") from None
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class SweepOutcome:
    states: dict[str, JobState]
    results: list[Path]  # the sweep's result files (finished now or before), in job order
    leaderboard_md: str | None  # None when there is no result, or the board could not be built
    leaderboard_files: tuple[Path, Path] | None  # leaderboard.csv, leaderboard.md under the out dir
    leaderboard_error: str | None = None

    @property
    def failed(self) -> list[JobState]:
        return [s for s in self.states.values() if s.status == FAILED]

    @property
    def ok(self) -> bool:
        return not self.failed and self.leaderboard_error is None


def run_sweep(
    jobs: list[SweepJob],
    backend: Backend,
    console: Console | None = None,
    rank_by: str | None = None,
    interval: float = 30.0,
    time_limit: float | None = None,
    board: Path | None = None,
) -> SweepOutcome:
    """Run every unfinished job of `jobs` on `backend`; a failed job never stops the others. After
    `time_limit` seconds the sweep stops as on Ctrl-C and raises SweepTimeLimit. A job whose result is in the
    results folder `board` already (`board_result`) is skipped like a finished one, and that result is the
    one its leaderboard reads."""
    if not jobs:
        raise FairbenchError("the sweep has no jobs")
    if time_limit is not None and not time_limit > 0:
        raise FairbenchError(f"the time limit must be positive, got {time_limit:g} s")
    by_key = {job.key: job for job in jobs}
    status = SweepStatus(jobs)
    todo, result_of = [], {job.key: job.result_path for job in jobs}
    for job in jobs:
        found = existing_result(job, board)
        if found is None:
            todo.append(job)
        else:
            status.skip(job.key)
            result_of[job.key] = found

    console = console or Console(stderr=True)
    view = make_view(status, console, interval)

    def on_event(event: JobEvent) -> None:
        if event.kind == DONE:  # the result first: a job is finished exactly when its result is on disk
            atomic.write_text(by_key[event.key].result_path, event.text)
        view.update(event, status.apply(event))

    deadline = _Deadline()
    try:
        with view, _sigterm_as_interrupt(), _time_limit(time_limit, deadline):
            backend.run(todo, on_event)
    except (KeyboardInterrupt, TrainingInterrupted):
        if deadline.reached:
            done = sum(state.status in (DONE, SKIPPED) for state in status.states.values())
            raise SweepTimeLimit(
                f"time limit of {time_limit:g} s reached with {done} of {len(jobs)} jobs finished; the running "
                "ones saved their training state: rerun the same command to resume"
            ) from None
        raise SweepInterrupted("interrupted; rerun the same command to resume") from None

    results = [result_of[job.key] for job in jobs if status.states[job.key].status in (DONE, SKIPPED)]
    out = jobs[0].settings.out
    if not results:
        return SweepOutcome(status.states, results, None, None)
    try:
        boards = build_leaderboard([read_result(path) for path in results], rank_by)
        markdown, csv = render_markdown(boards), render_csv(boards)
    except FairbenchError as exc:
        return SweepOutcome(status.states, results, None, None, f"leaderboard: {exc}")
    files = (out / "leaderboard.csv", out / "leaderboard.md")
    atomic.write_text(files[0], csv)
    atomic.write_text(files[1], markdown)
    return SweepOutcome(status.states, results, markdown, files)
