"""`fairbench tasks` and `fairbench methods`: what is installed, as a table that fits the terminal."""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fairbench.cli.common import user_errors
from fairbench.entry_identity import format_setting


@user_errors
def tasks_cmd(as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table.")) -> None:
    """List the installed tasks."""
    from fairbench.task_registry import list_tasks

    specs = list_tasks()
    if as_json:
        typer.echo(json.dumps([s.summary() for s in specs], indent=2))
        return
    console = Console()
    console.print(tasks_table(specs, console))


def _group_summary(names: list[str]) -> str:
    return " / ".join(names) if len(names) <= 3 else f"{len(names)}: {names[0]} … {names[-1]}"


# `fairbench tasks` columns, most important first; at a narrow width the last ones are dropped, and ids (the
# names users type) are never cut.
_TASK_COLUMNS = ("id", "version", "aliases", "groups", "conditional", "image", "hash")


def tasks_table(specs: list[Any], console: Console) -> Table:
    """The widest table of tasks that fits the console without cutting a cell; a caption names what it drops."""

    def cells(s: Any) -> dict[str, str]:
        c, h, w = s.image_shape
        return {
            "id": s.id, "version": str(s.version), "groups": f"{s.groups.attribute}: {_group_summary(s.groups.names)}",
            "conditional": "yes" if s.conditional else "no", "image": f"{c}x{h}x{w}",
            "aliases": ", ".join(s.aliases), "hash": s.task_hash[:12],
        }

    rows = [cells(s) for s in specs]

    def need(col: str) -> int:  # no cell wraps or is cut: a column is as wide as its widest cell
        return max([len(col)] + [len(row[col]) for row in rows])

    widths = {col: need(col) for col in _TASK_COLUMNS}
    n = len(_TASK_COLUMNS)
    while n > 1 and sum(widths[c] + 3 for c in _TASK_COLUMNS[:n]) + 1 > console.width:  # padding 2, border 1
        n -= 1
    shown, dropped = _TASK_COLUMNS[:n], _TASK_COLUMNS[n:]
    caption = f"not shown at this width: {', '.join(dropped)} (see --json)" if dropped else None
    table = Table(title="fairbench tasks", caption=caption)
    for col in shown:
        table.add_column(col, no_wrap=True, min_width=widths[col])
    for row in rows:
        table.add_row(*(row[col] for col in shown))
    return table


@user_errors
def methods_cmd(
    name: str | None = typer.Argument(None, help="One method to describe (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of tables."),
) -> None:
    """Describe the registered training methods and their options (--set KEY=VALUE) with defaults."""
    console = Console()
    described = methods_catalogue(name)
    if as_json:
        typer.echo(json.dumps(described, indent=2))
        return
    for method in described:
        table = Table(title=f"[bold]{method['name']}[/]: {escape(method['description'])}", title_justify="left",
                      expand=False)
        table.add_column("option", no_wrap=True)
        table.add_column("default", no_wrap=True)
        table.add_column("meaning")
        for option in method["options"]:
            table.add_row(option["name"], format_setting(option["default"]), escape(option["meaning"]))
        console.print(table)


def methods_catalogue(name: str | None = None) -> list[dict[str, Any]]:
    """[{name, description, options: [{name, default, meaning}]}] for every method, or the one named."""
    import dataclasses
    import inspect

    from fairbench.errors import FairbenchError
    from fairbench.methods import METHODS, option_docs
    from fairbench.plugins import load_plugins

    load_plugins()
    names = METHODS.names()
    if name is not None and name not in names:
        raise FairbenchError(f"unknown method {name!r}; registered: {', '.join(names)}")
    out = []
    for method_name in names if name is None else [name]:
        method = METHODS.get(method_name)
        doc = inspect.getdoc(type(method)) or ""
        docs = option_docs(method.config_cls)
        out.append({
            "name": method_name,
            "description": " ".join(doc.split("\n\n")[0].split()),
            "options": [{"name": f.name, "default": getattr(method.config_cls(), f.name), "meaning": docs.get(f.name, "")}
                        for f in dataclasses.fields(method.config_cls)],
        })
    return out


@user_errors
def examples_cmd(
    name: str | None = typer.Argument(None, help="Print this example's verified path only (for scripts)."),
) -> None:
    """The example generator checkpoints shipped in the package: score them to see a fair and an unfair one."""
    from fairbench.examples import example_path, examples

    if name is not None:
        typer.echo(str(example_path(name)))
        return
    table = Table(title="example checkpoints (fairbench score $(fairbench examples NAME))", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("task", no_wrap=True)
    table.add_column("what it shows")
    for example in examples().values():
        table.add_row(example.name, example.task, escape(f"{example.description}; trained by: {example.command}"))
    Console().print(table)
