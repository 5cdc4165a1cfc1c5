"""Run a sweep: skip finished jobs, run the rest on a backend, write each result, build the sweep's leaderboard.

The driver alone writes result files (atomically, `<run dir>/result.json`, where `fairbench score` puts
them): a job counts as finished exactly when its result is on disk, so a sweep stopped at any moment
(Ctrl-C, a crash, a lost node) is resumed by running it again. Jobs already finished are skipped; the others
resume their training from its last saved state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rich.console import Console

from fairbench import atomic
from fairbench.errors import FairbenchError
from fairbench.leaderboard import build_leaderboard, read_result, render_csv, render_markdown
from fairbench.sweep.grid import SweepJob, finished
from fairbench.sweep.job import DONE, FAILED, JobEvent
from fairbench.sweep.view import SKIPPED, JobState, SweepStatus, make_view
from fairbench.training import TrainingInterrupted, _sigterm_as_interrupt


class Backend(Protocol):
    name: str

    def run(self, jobs: list[SweepJob], on_event: Callable[[JobEvent], None]) -> None: ...


class SweepInterrupted(Exception):
    """Ctrl-C or SIGTERM: running jobs saved their training state; rerunning the sweep resumes it."""


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
) -> SweepOutcome:
    """Run every unfinished job of `jobs` on `backend`; a failed job never stops the others."""
    if not jobs:
        raise FairbenchError("the sweep has no jobs")
    by_key = {job.key: job for job in jobs}
    status = SweepStatus(jobs)
    todo = []
    for job in jobs:
        if finished(job):
            status.skip(job.key)
        else:
            todo.append(job)

    console = console or Console(stderr=True)
    view = make_view(status, console, interval)

    def on_event(event: JobEvent) -> None:
        if event.kind == DONE:  # the result first: a job is finished exactly when its result is on disk
            atomic.write_text(by_key[event.key].result_path, event.text)
        view.update(event, status.apply(event))

    try:
        with view, _sigterm_as_interrupt():
            backend.run(todo, on_event)
    except (KeyboardInterrupt, TrainingInterrupted):
        raise SweepInterrupted("interrupted; rerun the same command to resume") from None

    results = [job.result_path for job in jobs if status.states[job.key].status in (DONE, SKIPPED)]
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
