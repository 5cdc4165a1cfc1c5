"""`fairbench leaderboard`, `fairbench report` and `fairbench grid`: what results and checkpoints look like."""

from __future__ import annotations

from pathlib import Path

import typer

from fairbench.cli.common import err, user_errors
from fairbench.cli.guard import writable_file, writable_folder
from fairbench.errors import FairbenchError


@user_errors
def leaderboard_cmd(
    results: Path = typer.Option(Path("leaderboard/results"), "--results", help="Folder of result JSONs."),
    out: Path = typer.Option(Path("leaderboard"), "--out", help="Where to write leaderboard.csv and .md."),
    rank_by: str | None = typer.Option(None, "--rank-by", help="Primary metric (default kl_uniform_corrected)."),
    per_seed: bool = typer.Option(
        False, "--per-seed", help="Also list every run's values after each board, and write leaderboard_runs.csv."
    ),
    html: bool = typer.Option(
        False, "--html", help="Also write leaderboard.html: a static page (sortable tables, share bars, figures)."
    ),
) -> None:
    """Build leaderboard.csv and leaderboard.md (and --html) from result files alone."""
    writable_folder(out, "--out")
    from fairbench.board import HTML_NAME, RUNS_CSV, write_leaderboard

    csv_path, md_path = write_leaderboard(results, out, rank_by, per_seed=per_seed, html=html)
    typer.echo(md_path.read_text(encoding="utf-8"), nl=False)  # as written: a wrapped table row is broken
    typer.echo(str(csv_path))
    typer.echo(str(md_path))
    if per_seed:
        typer.echo(str(csv_path.parent / RUNS_CSV))
    if html:
        typer.echo(str(csv_path.parent / HTML_NAME))


@user_errors
def report_cmd(
    targets: list[Path] = typer.Argument(..., help="Result JSONs, or run folders holding result.json."),
    samples: bool = typer.Option(True, "--samples/--no-samples", help="Sample grids (need the scored submission)."),
    samples_if_scored: bool = typer.Option(
        False, "--samples-if-scored", help="Sample grids when the scored submission is still there, else keep old ones."
    ),
    per_row: int = typer.Option(10, "--per-row", help="Samples per grid row."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (for re-sampling a checkpoint)."),
) -> None:
    """PNG figures beside each result: group shares, per-condition heat map, sample grids per judged group."""
    for target in targets:  # figures go beside each result, listed in a sidecar (the result is never rewritten)
        writable_folder(target if target.is_dir() else target.parent, "result folder")
    from fairbench.report import make_report

    for target in targets:  # one process for a whole board: torch and the judges load once
        files = make_report(target, samples=samples, per_row=per_row, device=device, samples_if_scored=samples_if_scored)
        if files.no_samples_because:
            err.print(f"note: {files.no_samples_because}", markup=False, highlight=False, soft_wrap=True)
        for path in (files.shares, files.conditions, files.quality, *files.samples.values()):
            if path is not None:
                typer.echo(str(path))


@user_errors
def grid_cmd(
    checkpoint: Path = typer.Argument(..., help="Generator checkpoint."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write."),
    per_condition: int = typer.Option(8, "--per-condition", help="Samples per class (one row each)."),
    scale: int = typer.Option(3, "--scale", help="Pixel upscaling factor."),
) -> None:
    """Save a PNG grid of samples: one row per condition, titled with task, entry, seed and steps."""
    writable_file(out, "--out")
    from fairbench.entry_identity import checkpoint_entry_name
    from fairbench.report.figure import save_figure
    from fairbench.report.sample_grids import draw_labelled_grid
    from fairbench.submission import checkpoint as ckpt_io
    from fairbench.submission.samples import samples_from_checkpoint
    from fairbench.task_registry import get_task

    if per_condition < 1 or scale < 1:
        raise FairbenchError("--per-condition and --scale must be at least 1")
    ckpt = ckpt_io.load_checkpoint(checkpoint)
    try:
        task = get_task(ckpt.task)
    except FairbenchError as exc:
        raise FairbenchError(f"{checkpoint}: {exc}") from None
    classes = task.num_classes if task.conditional else 0
    samples = samples_from_checkpoint(checkpoint, task, per_condition * max(classes, 1), checkpoint=ckpt)
    images, labels = samples.images, samples.conditions
    if labels is not None:
        images = images[labels.argsort(stable=True)]
    default_batch = None if task.training is None else task.training.batch_size
    entry = checkpoint_entry_name(ckpt.method, ckpt.config, ckpt.train, default_batch)
    steps = (ckpt.train or {}).get("steps")
    title = f"{task.id} · {entry} · seed {ckpt.seed}" + (f" · {steps} steps" if isinstance(steps, int) else "")
    row_labels = [f"{task.class_names[c]}" for c in range(classes)] if classes else None
    save_figure(draw_labelled_grid(images, per_condition, row_labels, title, scale), out)
    typer.echo(str(out))
