"""`fairbench conditions`: one group's share per condition across entries and seeds, as a figure and a few
lines of text (the drawing is `fairbench.report.condition_compare`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fairbench.cli.common import user_errors
from fairbench.cli.guard import writable_file
from fairbench.errors import FairbenchError

if TYPE_CHECKING:
    from fairbench.board.records import ResultRecord


def read_records(paths: list[Path]) -> list[ResultRecord]:
    """The given result files, and every result under the given folders (as the board reads a folder)."""
    from fairbench.board.records import read_result, read_results

    records: list[ResultRecord] = []
    for path in paths:
        if path.is_dir():
            records += read_results(path)
        elif path.is_file():
            records.append(read_result(path))
        else:
            raise FairbenchError(f"{path}: no such result file or folder")
    return records


@user_errors
def conditions_cmd(
    results: list[Path] = typer.Argument(..., help="Result JSONs or folders of them, all of one conditional task."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write."),
    group: str | None = typer.Option(None, "--group", "-g", help="Group whose share is drawn (default: the last)."),
    kind: str = typer.Option("observed", "--kind", help="observed (judged) or corrected (judge errors undone)."),
) -> None:
    """Draw each entry's share of GROUP per condition: bars the mean over seeds, dots each seed."""
    # late, like every command: `fairbench.report` loads torch and matplotlib, which `fairbench tasks` never needs
    from fairbench.board.board import build_leaderboard
    from fairbench.report.condition_compare import collect_condition_shares, save_condition_comparison

    if kind not in ("observed", "corrected"):
        raise FairbenchError(f"--kind must be observed or corrected, got {kind!r}")
    if out.suffix.lower() != ".png":
        raise FairbenchError(f"--out must name a .png file, got {out}")
    writable_file(out, "--out")
    # Built like the board: the same checks, the same entry names (told apart when they share one), its order.
    boards = build_leaderboard(read_records(results))
    if len(boards) != 1:
        raise FairbenchError(f"results of {len(boards)} tasks ({', '.join(b.task for b in boards)}); give one task's")
    pairs = [(row.entry, json.loads(run.path.read_text(encoding="utf-8"))) for row in boards[0].rows for run in row.runs]
    task, chosen, conditions, entries = collect_condition_shares(pairs, group, kind)
    uniform = 1.0 / len(pairs[0][1]["groups"])
    for e in entries:
        mean = e.mean
        low, high = int(mean.argmin()), int(mean.argmax())
        seeds = f"{len(e.seeds)} seed{'s' if len(e.seeds) != 1 else ''}"
        typer.echo(f"{e.entry} ({seeds}): {chosen} {100 * mean.mean():.1f}% on average, from "
                   f"{100 * mean[low]:.1f}% ({conditions[low]}) to {100 * mean[high]:.1f}% ({conditions[high]})")
    typer.echo(str(save_condition_comparison(out, task, chosen, conditions, entries, uniform, kind)))
