"""`fairbench curve`: score a run's training snapshots and draw its learning curves."""

from __future__ import annotations

from pathlib import Path

import typer

from fairbench.cli.common import progress_bar, user_errors
from fairbench.cli.guard import data_root_given, writable_file, writable_folder
from fairbench.errors import FairbenchError


@user_errors
def curve_cmd(
    runs: list[Path] = typer.Argument(..., help="Run folders trained with --snapshot-every (runs/<task>/<method>/seed<S>)."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write (its numbers go to the CSV of the same stem)."),
    metric: str = typer.Option("fid", "--metric", help="Quality metric to follow (lower is better), e.g. fid or kid."),
    samples: int | None = typer.Option(None, "--samples", "-n", help="Samples per snapshot (default: the task's)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Dataset root for the quality reference split."),
) -> None:
    """Score every snapshot of each run (cached beside it), then plot METRIC and the group shares by step."""
    from fairbench.report.learning_curve import save_learning_curves, score_run, snapshots, summarise
    from fairbench.scoring import ScoreOptions, score_checkpoint

    if samples is not None and samples < 1:
        raise FairbenchError("--samples must be positive")
    if out.suffix.lower() != ".png":
        raise FairbenchError(f"--out must name a .png file, got {out}")
    writable_file(out, "--out")
    for run in runs:  # each snapshot's score is cached beside it
        writable_folder(run, "run folder")
    data_root_given(data_root)
    total = sum(len(snapshots(run)) for run in runs)  # every run checked before any scoring
    options = ScoreOptions(n_samples=samples, device=device, data_root=data_root)
    points = []
    with progress_bar() as bar:
        handle = bar.add_task("scoring snapshots", total=total, info="")
        for run in runs:
            before = len(points)

            def progress(label: str, step: int, done: int, before=before) -> None:
                bar.update(handle, completed=before + done, info=f"{label} step {step}")

            points += score_run(run, lambda path: score_checkpoint(path, options).to_json(), samples, progress)
            bar.update(handle, completed=len(points))
    for s in summarise(points, metric):
        note = "still improving at the last snapshot" if s.still_improving else f"last {s.last_value:.4g} at step {s.last_step}"
        typer.echo(f"{s.run}: best {metric} {s.best_value:.4g} at step {s.best_step} ({note})")
    for path in save_learning_curves(points, metric, out):
        typer.echo(str(path))
