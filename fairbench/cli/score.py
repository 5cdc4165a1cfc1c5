"""`fairbench score`: sample and score a checkpoint or an image set, then print what a reader needs first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fairbench.chunking import SCORE_CHUNK
from fairbench.cli.common import err, progress_bar, user_errors
from fairbench.errors import FairbenchError


@user_errors
def score_cmd(
    checkpoint: Path | None = typer.Argument(None, help="Generator checkpoint (.pt) to sample and score."),
    task: str | None = typer.Option(
        None, "--task", "-t", help="Task id/alias/YAML: required with --images; for a checkpoint, a custom task file."
    ),
    images: Path | None = typer.Option(None, "--images", help="Image set: .npz or a folder of images."),
    samples: int | None = typer.Option(None, "--samples", "-n", help="Samples to draw (default: the task's)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Result JSON (default: result.json beside a checkpoint, NAME.result.json beside an image set)."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole result JSON."),
    batch_size: int | None = typer.Option(None, "--batch-size", hidden=True),  # kept so old scripts still run
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Dataset root for the quality reference split."),
    ref_stats: Path | None = typer.Option(None, "--ref-stats", help="Precomputed reference statistics for fid."),
    feature_network: str | None = typer.Option(
        None, "--feature-network", help="FID-family network: 'task' (default: the task's; its GPU one on cuda), "
        "clip or inception. Recorded in the result; boards never mix networks.",
    ),
    name: str | None = typer.Option(
        None, "--name", help="Leaderboard entry name (default: the one given at training, else derived from the "
        "method and its config; for an image set, its file or folder name).",
    ),
) -> None:
    """Score a checkpoint, or an image set with --task and --images."""
    from fairbench.results import dumps, write_result
    from fairbench.scoring import ScoreOptions, score_checkpoint, score_image_set

    if (checkpoint is None) == (images is None):
        raise FairbenchError("give either a CHECKPOINT or --task ID --images FILE.npz|DIR")
    if images is not None and task is None:
        raise FairbenchError("--images needs --task ID")
    if images is not None and samples is not None:
        raise FairbenchError("--samples applies to checkpoints; an image set is scored as it is")
    if batch_size is not None:
        err.print(f"note: --batch-size is no longer used: every network runs in fixed chunks of {SCORE_CHUNK} "
                  "images while scoring, so that no batch size can change a score", markup=False, highlight=False)
    with progress_bar() as bar:
        handles: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in handles:
                handles[stage] = bar.add_task(stage, total=total, info="")
            bar.update(handles[stage], completed=done, total=total)

        options = ScoreOptions(
            n_samples=samples, device=device, progress=progress, data_root=data_root,
            ref_stats=ref_stats, feature_network=feature_network, name=name,
            note=lambda text: bar.console.print(f"note: {text}", markup=False, highlight=False),
        )
        if checkpoint is not None:
            result = score_checkpoint(checkpoint, options, task=task)
            default_out = checkpoint.parent / "result.json"
        else:
            result = score_image_set(task, images, options)  # type: ignore[arg-type]
            # Beside the input, never inside an image folder (it would become part of the submission).
            name = images.stem if images.is_file() else images.name  # type: ignore[union-attr]
            default_out = images.parent / f"{name}.result.json"  # type: ignore[union-attr]
    path = write_result(out or default_out, result)
    if as_json:
        typer.echo(dumps(result), nl=False)
        return
    _print_score(result)
    typer.echo(str(path))


def _print_score(result: Any) -> None:
    from fairbench.leaderboard.board import FEATURE_METRICS

    console = Console()
    props = result.group_proportions
    kinds = [k for k in ("observed", "corrected") if k in props]  # a judge without a confusion matrix: observed only
    groups = ", ".join(
        f"{g} {props['observed'][i]:.3f}" + (f" (corrected {props['corrected'][i]:.3f})" if "corrected" in props else "")
        for i, g in enumerate(result.groups)
    )
    console.print(f"[bold]{result.task}[/] · {escape(entry_name(result))} · {result.n_samples} samples · {groups}")
    if result.group_shares:
        shares = Table(title="group shares, simultaneous 95% intervals")
        for col in ("group", "count", *kinds):
            shares.add_column(col)
        for group, entry in result.group_shares.items():
            cells = [
                f"{100 * entry[kind]['value']:.1f}% [{100 * entry[kind]['ci95'][0]:.1f}, {100 * entry[kind]['ci95'][1]:.1f}]"
                for kind in kinds
            ]
            shares.add_row(group, str(entry["count"]), *cells)
        console.print(shares)
    if result.fairness_tests:
        console.print(_fairness_test_line(result.fairness_tests), highlight=False)
    table = Table(caption="↓ lower is better, ↑ higher is better")
    table.add_column("metric", no_wrap=True)  # names are what users look up: never cut
    for col in ("value", "95% interval"):
        table.add_column(col, no_wrap=True)
    for name, m in result.metrics.items():
        lo, hi = m["ci95"]
        table.add_row(f"{name} {'↑' if m['higher_is_better'] else '↓'}", f"{m['value']:.4f}", f"[{lo:.4f}, {hi:.4f}]")
    console.print(table)
    if result.feature_network and any(m in result.metrics for m in FEATURE_METRICS):
        fn = result.feature_network
        console.print(f"FID family on feature network {fn['id']} ({fn['sha256'][:12]}…); not comparable across networks")
    reasons: dict[str, list[str]] = {}  # one line per reason: a missing reference split skips five metrics
    for name, why in result.skipped.items():
        reasons.setdefault(why, []).append(name)
    for why, names in reasons.items():
        console.print(f"[yellow]skipped[/] {escape(', '.join(names))}: {escape(why)}", highlight=False)


def entry_name(result: Any) -> str:
    """The name the result's leaderboard entry gets (before telling apart same-named entries of one board)."""
    from fairbench.entries import derived_name

    if result.name:
        return result.name
    if result.method is None:
        return result.submission.name
    return derived_name(result.method, result.config_changed, result.config_hash)


def _fairness_test_line(tests: dict) -> str:
    """'H0 every group equally likely: p = 0.21 observed, 0.097 corrected; worst condition ...'."""

    def fmt(p: float) -> str:
        return f"{p:.2g}" if p >= 1e-4 else "<1e-4"

    parts = [f"p = {fmt(tests['uniform']['p_value'])} observed"]
    if "uniform_corrected" in tests:
        parts.append(f"{fmt(tests['uniform_corrected']['p_value'])} corrected")
    line = "test of fairness (H0: every group equally likely): " + ", ".join(parts)
    if "uniform_cond_worst" in tests and "uniform_corrected_cond_worst" in tests:
        worst = (tests["uniform_cond_worst"]["p_value"], tests["uniform_corrected_cond_worst"]["p_value"])
        line += f"; worst condition (Sidak-adjusted) p = {fmt(worst[0])} observed, {fmt(worst[1])} corrected"
    return line
