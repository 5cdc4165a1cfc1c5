"""What a sweep shows while it runs: every job's state, progress and elapsed time.

`SweepStatus` folds the backends' events into one `JobState` per job. On a terminal, `LiveView` redraws
one table (fitting the console's width: the job column folds, never cuts, and rows that do not fit the
height collapse into a count); otherwise `PlainView` prints a line per finished, failed or retried job
and a summary line every `interval` seconds, which logs and CI read well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from fairbench.sweep.job_grid import SweepJob
from fairbench.sweep.job import DONE, FAILED, PROGRESS, RETRY, STARTED, JobEvent

PENDING, RUNNING, SKIPPED, RETRYING = "pending", "running", "skipped", "retry"
STYLE = {PENDING: "dim", RUNNING: "cyan", SKIPPED: "dim green", RETRYING: "yellow", DONE: "green", FAILED: "red"}


@dataclass
class JobState:
    key: str
    status: str = PENDING
    phase: str = ""
    done: int = 0
    total: int = 0
    attempts: int = 0
    started: float | None = None
    ended: float | None = None
    error: str = ""

    def elapsed(self, now: float) -> float | None:
        if self.started is None:
            return None
        return (self.ended if self.ended is not None else now) - self.started


@dataclass
class SweepStatus:
    jobs: list[SweepJob]
    states: dict[str, JobState] = field(init=False)
    began: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.states = {job.key: JobState(job.key) for job in self.jobs}

    def skip(self, key: str) -> None:
        self.states[key].status = SKIPPED

    def apply(self, event: JobEvent) -> JobState:
        state, now = self.states[event.key], time.monotonic()
        if event.kind == STARTED:
            state.status, state.attempts, state.phase, state.done, state.total = RUNNING, state.attempts + 1, "", 0, 0
            state.started = state.started or now
        elif event.kind == PROGRESS:
            state.phase, state.done, state.total = event.phase, event.done, event.total
        elif event.kind == RETRY:
            state.status, state.error = RETRYING, event.text
        elif event.kind in (DONE, FAILED):
            state.status, state.ended = event.kind, now
            state.error = event.text if event.kind == FAILED else ""
        return state

    def count(self, status: str) -> int:
        return sum(s.status == status for s in self.states.values())

    def summary(self) -> str:
        n = len(self.states)
        finished = self.count(DONE) + self.count(SKIPPED)
        parts = [f"{finished}/{n} done"]
        if self.count(SKIPPED):
            parts.append(f"{self.count(SKIPPED)} skipped")
        parts += [f"{self.count(RUNNING) + self.count(RETRYING)} running", f"{self.count(FAILED)} failed"]
        return ", ".join(parts) + f" [{_clock(time.monotonic() - self.began)}]"


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


PHASE_LABEL = {"sampling": "sample", "judging": "judge"}  # fit the 7-character state column


def _progress_text(state: JobState) -> str:
    if state.status not in (RUNNING, RETRYING) or not state.phase:
        return ""
    return f"{state.phase} {state.done}/{state.total}"


def _state_cell(state: JobState) -> Text:
    """A running job shows its phase (train, sample, judge, quality) in place of 'running'."""
    if state.status == RUNNING and state.phase:
        return Text(PHASE_LABEL.get(state.phase, state.phase)[:7], style=STYLE[RUNNING])
    return Text(state.status, style=STYLE[state.status])


class LiveView:
    """One table redrawn in place (rich Live), at most the console's width."""

    def __init__(self, status: SweepStatus, console: Console) -> None:
        self.status, self.console = status, console
        self.live = Live(console=console, refresh_per_second=4, get_renderable=self.render, transient=False)

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def update(self, event: JobEvent, state: JobState) -> None:  # the Live thread redraws
        pass

    def render(self) -> Group:
        table = Table(box=None, padding=(0, 1, 0, 0), show_edge=False, expand=False, header_style="bold")
        table.add_column("job", overflow="fold", ratio=1, min_width=16)
        table.add_column("state", width=7, no_wrap=True)
        table.add_column("progress", width=11, no_wrap=True, overflow="ellipsis", justify="right")
        table.add_column("", width=10, no_wrap=True)
        table.add_column("time", width=7, no_wrap=True, justify="right")
        rows, hidden = self._visible()
        now = time.monotonic()
        for state in rows:
            active = state.status in (RUNNING, RETRYING) and state.total
            bar = ProgressBar(total=state.total, completed=state.done, width=10) if active else None
            table.add_row(
                Text(state.key), _state_cell(state), Text(f"{state.done}/{state.total}" if bar else ""), bar or "",
                Text(_clock(state.elapsed(now))),
            )
        lines: list = [table]
        if hidden:
            lines.append(Text(f"... and {hidden} more", style="dim"))
        lines.append(Text(self.status.summary(), style="bold"))
        return Group(*lines)

    def _visible(self) -> tuple[list[JobState], int]:
        states = list(self.status.states.values())
        room = max(4, self.console.size.height - 6)
        if len(states) <= room:
            return states, 0
        first = [s for s in states if s.status in (RUNNING, RETRYING, FAILED)]
        rest = [s for s in states if s not in first]
        shown = (first + rest)[:room]
        keep = {s.key for s in shown}
        return [s for s in states if s.key in keep], len(states) - len(shown)


class PlainView:
    """Lines, not redraws: one per job that ends or is retried, and a summary every `interval` seconds."""

    def __init__(self, status: SweepStatus, console: Console, interval: float = 30.0) -> None:
        self.status, self.console, self.interval = status, console, interval
        self.last = time.monotonic()

    def __enter__(self) -> PlainView:
        self._print(f"sweep: {len(self.status.states)} jobs, " + self.status.summary())
        return self

    def __exit__(self, *exc) -> None:
        self._print(self.status.summary())

    def update(self, event: JobEvent, state: JobState) -> None:
        now = time.monotonic()
        if event.kind in (DONE, FAILED, RETRY):
            line = f"{event.kind:<7} {state.key}"
            if event.kind == DONE:
                line += f" ({_clock(state.elapsed(now))})"
            else:
                line += f": {event.text}"
            self._print(line)
        if now - self.last >= self.interval:
            self._print(self.status.summary())
            for s in self.status.states.values():
                if s.status == RUNNING and s.phase:
                    self._print(f"  {s.key} {_progress_text(s)}")
            self.last = now

    def _print(self, line: str) -> None:
        self.console.print(escape(line), highlight=False, soft_wrap=True)


def make_view(status: SweepStatus, console: Console, interval: float = 30.0) -> LiveView | PlainView:
    return LiveView(status, console) if console.is_terminal else PlainView(status, console, interval)
