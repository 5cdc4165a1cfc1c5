"""What every `fairbench` sub-command shares: one-line user errors, --debug, and progress that fits the screen."""

from __future__ import annotations

import functools
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click as _plain_click
import typer
import typer.core
import yaml
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Column
from typer.core import TyperGroup

from fairbench.errors import FairbenchError

# typer >= 0.2x parses with its own copy of click (typer._click); older ones use click itself
_exceptions: Any = getattr(getattr(typer.core, "_click", None), "exceptions", None) or _plain_click.exceptions
# Resolved now, not in the except clauses, so a missing name cannot turn into an error of its own there.
_ClickException: type[Exception] = _exceptions.ClickException
_UsageError: type[Exception] = _exceptions.UsageError
_NoArgsIsHelp: type[Exception] = getattr(_exceptions, "NoArgsIsHelpError", None) or type("_Never", (Exception,), {})
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
DEBUG = {"on": False}


def print_error(message: str) -> None:
    """The one form every user error takes: a single `error: ...` line on stderr, never wrapped."""
    line = " ".join(message.split())
    err.print(f"[bold red]error:[/] {escape(line)}", markup=True, highlight=False, soft_wrap=True)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a program stopped by Ctrl-C
KEPT_BY_DEFAULT = "no file was left half-written (each is written whole or not at all); rerun the same command"
_ON_INTERRUPT: list[str | Callable[[], str]] = []


def on_interrupt(note: str | Callable[[], str]) -> None:
    """What the running command says if Ctrl-C stops it from now on: what it keeps and how to go on. A
    callable is asked only then (it may look at what is on disk by that time)."""
    _ON_INTERRUPT[:] = [note]


def print_interrupted(note: str | Callable[[], str] | None = None) -> None:
    """The one line a Ctrl-C leaves on stderr: 'interrupted; <what was kept and how to resume>'."""
    if callable(note):
        try:
            note = note()
        except Exception:  # noqa: BLE001 - half-imported or half-written state: say the general truth
            note = None
    err.print(f"interrupted; {note or KEPT_BY_DEFAULT}", markup=False, highlight=False, soft_wrap=True)


def user_errors(fn: F) -> F:
    """A FairbenchError becomes one line on stderr and exit code 2; --debug keeps the traceback. So does an
    OSError that the place written to causes (disk full, read-only, no permission). Ctrl-C is one line saying
    what was kept (`on_interrupt`) and exit 130."""
    from fairbench.atomic import WRITE_ERRNOS, remedy

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = DEBUG["on"] or os.environ.get("FAIRBENCH_DEBUG")
        _ON_INTERRUPT.clear()
        try:
            return fn(*args, **kwargs)
        except FairbenchError as exc:
            if debug:
                raise
            print_error(str(exc))
            raise typer.Exit(2) from None
        except OSError as exc:  # outside fairbench.atomic (e.g. a lock file in a full folder)
            if debug or exc.errno not in WRITE_ERRNOS:
                raise
            print_error(f"{exc.filename or 'output'}: {exc.strerror or exc}; {remedy(exc)}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            if debug:
                raise
            print_interrupted(_ON_INTERRUPT[0] if _ON_INTERRUPT else None)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper  # type: ignore[return-value]


class OneLineErrors(TyperGroup):
    """The root command: typer's boxed usage errors (`--seed abc`, a missing argument) become the same one
    `error:` line as every other user error, with the exit code click gives them (2 for usage)."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
        standalone_mode: bool = True, **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NoArgsIsHelp as exc:  # `fairbench judge`: the help, as click shows it
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        except _ClickException as exc:
            where = exc.ctx.command_path if isinstance(exc, _UsageError) and exc.ctx else None
            message = exc.format_message()
            print_error(message.rstrip(".") + f" (see '{where} --help')" if where else message)
            sys.exit(exc.exit_code)
        except typer.Abort:
            print_error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        """Ctrl-C outside a command's own handling (`user_errors`): the same one line, exit 130."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            print_interrupted()
            raise typer.Exit(EXIT_INTERRUPTED) from None


class _Progress(Progress):
    """A progress bar that erases itself when a user error ends the command, so the error stays one line."""

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        if exc_type is not None and issubclass(exc_type, FairbenchError):
            self.live.transient = True
        super().__exit__(exc_type, exc_val, exc_tb)


class PlainProgress:
    """Progress for output that is not a terminal (a pipe, make, a log file): a plain line when a task starts,
    every `interval_s` seconds while it runs, and when it ends. Same calls as rich's Progress."""

    def __init__(self, console: Console, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.console, self.interval_s, self.clock = console, interval_s, clock
        self.tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> TaskID:
        task_id = TaskID(len(self.tasks))
        now = self.clock()
        self.tasks[task_id] = {"description": description, "total": total, "completed": 0, "fields": dict(fields),
                               "started": now, "last": None, "done": False}
        return task_id

    def update(self, task_id: TaskID, completed: float | None = None, total: float | None = None, **fields: Any) -> None:
        task = self.tasks[task_id]
        if completed is not None:
            task["completed"] = completed
        if total is not None:
            task["total"] = total
        task["fields"].update(fields)
        if task["done"]:
            return
        now = self.clock()
        finished = task["total"] is not None and task["completed"] >= task["total"]
        if finished or task["last"] is None or now - task["last"] >= self.interval_s:
            task["last"], task["done"] = now, finished
            self.console.print(self._line(task, now), markup=False, highlight=False, soft_wrap=True)

    def _line(self, task: dict[str, Any], now: float) -> str:
        done, total = task["completed"], task["total"]
        count = f"{done:g}/{total:g} ({100 * done / total:.0f}%)" if total else f"{done:g}"
        info = task["fields"].get("info") or ""
        elapsed = _clock(now - task["started"])
        return f"{task['description']}: {count} {elapsed}" + (f" {info}" if info else "")


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def progress_bar(console: Console | None = None) -> Any:
    """A live bar on a terminal, sized to its width (the description and the logged values give way, never
    the counts); plain periodic lines otherwise. Both take add_task / update and work as context managers."""
    console = console or err
    if not console.is_terminal:
        return PlainProgress(console)
    width = console.width
    bar = 16 if width < 100 else 30
    # fixed: the bar, "12345/12345" 11, time remaining 7, four gaps; the description gets up to 48 of the
    # rest (it names the job), the logged values what is left, or no column at all when that is too narrow
    rest = max(width - bar - 11 - 7 - 4 - 1, 8)
    described = min(rest, 48)
    info = rest - described - 1
    columns: list[Any] = [
        TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=described)),
        BarColumn(bar_width=bar),
        MofNCompleteColumn(table_column=Column(no_wrap=True, min_width=11, justify="right")),
        TimeRemainingColumn(table_column=Column(no_wrap=True, min_width=7)),
    ]
    if info >= 8:
        columns.append(TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=info)))
    return _Progress(*columns, console=console, transient=False)


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` items as typed values (YAML scalars), as `run` and `sweep` both take them."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FairbenchError(f"--set expects KEY=VALUE, got {item!r}")
        parsed = yaml.safe_load(value)
        # YAML 1.1 reads 1e-4 (no dot) as a string; on the command line it is a number
        if isinstance(parsed, str) and _SCIENTIFIC.fullmatch(parsed.strip()):
            parsed = float(parsed)
        out[key.strip()] = parsed
    return out


_SCIENTIFIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
