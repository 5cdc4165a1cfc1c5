"""`fairbench vary`: one hyper-parameter against a group's share, kl_uniform and a metric, as a figure and a
line per value (the drawing is `fairbench.report.hyperparameter`)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from fairbench.cli.common import user_errors
from fairbench.cli.guard import writable_file
from fairbench.cli.conditions import read_records
from fairbench.errors import FairbenchError


@user_errors
def vary_cmd(
    results: list[Path] = typer.Argument(..., help="Result JSONs or folders of them: one task, one method."),
    param: str = typer.Option(..., "--param", "-p", help="The hyper-parameter on the x axis, e.g. clip_norm."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write."),
    group: str | None = typer.Option(None, "--group", "-g", help="Group whose share is drawn (default: the last)."),
    metric: str = typer.Option("fid", "--metric", help="Quality metric of the third panel (after share and KL)."),
    default: float | None = typer.Option(
        None, "--default", help="The value that results leaving PARAM unset ran with (the method's default)."
    ),
) -> None:
    """Draw a group's share, kl_uniform and a metric against one hyper-parameter, every seed a dot."""
    from fairbench.report.hyperparameter import collect_parameter_sweep, save_parameter_sweep

    if out.suffix.lower() != ".png":
        raise FairbenchError(f"--out must name a .png file, got {out}")
    writable_file(out, "--out")
    pairs = [(str(r.path), json.loads(r.path.read_text(encoding="utf-8"))) for r in read_records(results)]
    sweep = collect_parameter_sweep(pairs, param, group, metric, default)
    for point in sweep.points:
        shares = ", ".join(f"{100 * s:.1f}%" for s in point.shares)
        kls = ", ".join("-" if v is None else f"{v:.4f}" for v in point.kl)
        values = ", ".join("-" if v is None else f"{v:.4g}" for v in point.metric)
        seeds = ", ".join(str(s) for s in point.seeds)
        typer.echo(f"{param}={point.label} (seeds {seeds}): {sweep.group} {shares}; kl_uniform {kls}; "
                   f"{metric} {values}")
    typer.echo(str(save_parameter_sweep(out, sweep)))
