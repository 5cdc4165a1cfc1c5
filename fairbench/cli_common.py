"""What every `fairbench` sub-command shares: one-line user errors, --debug, and the progress bar."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fairbench.errors import FairbenchError

err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
DEBUG = {"on": False}


def user_errors(fn: F) -> F:
    """A FairbenchError becomes one line on stderr and exit code 2; --debug keeps the traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FairbenchError as exc:
            if DEBUG["on"] or os.environ.get("FAIRBENCH_DEBUG"):
                raise
            err.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


class _Progress(Progress):
    """A progress bar that erases itself when a user error ends the command, so the error stays one line."""

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        if exc_type is not None and issubclass(exc_type, FairbenchError):
            self.live.transient = True
        super().__exit__(exc_type, exc_val, exc_tb)


def progress_bar() -> Progress:
    return _Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
