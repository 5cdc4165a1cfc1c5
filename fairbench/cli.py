"""The `fairbench` command: parse, call the Python API, render with rich. No logic of its own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fairbench.cli_assets import assets_app
from fairbench.cli_common import DEBUG, OneLineErrors, err, progress_bar, user_errors
from fairbench.cli_curves import curve_cmd
from fairbench.cli_conditions import conditions_cmd
from fairbench.cli_gain import gain_cmd
from fairbench.cli_networks import features_app, judge_app
from fairbench.cli_sweep import sweep_cmd
from fairbench.errors import FairbenchError

app = typer.Typer(cls=OneLineErrors, no_args_is_help=True, add_completion=False, help="Representational fairness benchmark for image generators.")
app.add_typer(features_app, name="features")
app.add_typer(judge_app, name="judge")
app.add_typer(assets_app, name="assets", help="List, fetch and verify downloadable assets (weights).")

@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors.")) -> None:
    DEBUG["on"] = debug


@app.command("tasks")
@user_errors
def tasks_cmd(as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table.")) -> None:
    """List the installed tasks."""
    from fairbench.tasks import list_tasks

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


@app.command("methods")
@user_errors
def methods_cmd() -> None:
    """List the registered training methods and their hyper-parameters."""
    import dataclasses

    from fairbench.methods import METHODS
    from fairbench.plugins import load_plugins

    load_plugins()
    for name in METHODS.names():
        cfg = METHODS.get(name).config_cls()
        typer.echo(f"{name}: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(cfg).items()))


def _parse_overrides(items: list[str]) -> dict[str, Any]:
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


@app.command("run")
@user_errors
def run_cmd(
    method: str = typer.Option(..., "--method", "-m", help="Registered method, e.g. vanilla or repfair."),
    task: str = typer.Option(..., "--task", "-t", help="Task id, alias or YAML path."),
    seed: int = typer.Option(0, "--seed", help="Training seed."),
    steps: int | None = typer.Option(None, "--steps", help="Total training steps (default: the task's)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Runs folder."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Dataset root (default: $FAIRBENCH_DATA)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Training batch size (default: the task's)."),
    checkpoint_every: int | None = typer.Option(None, "--checkpoint-every", help="Steps between checkpoints."),
    snapshot_every: int | None = typer.Option(
        None, "--snapshot-every", help="Also keep the generator every N steps (RUN/snapshots/), for learning curves."
    ),
    overrides: list[str] = typer.Option([], "--set", help="Method hyper-parameter, e.g. --set clip_norm=10."),
    name: str | None = typer.Option(
        None, "--name", help="Leaderboard entry name (default: the method, plus any --set: repfair[clip_norm=10])."
    ),
    base: Path | None = typer.Option(
        None, "--base", help="Base generator checkpoint, for methods that start from one (rebalance)."
    ),
) -> None:
    """Train METHOD on TASK; rerun the same command to resume. Prints the checkpoint path last."""
    from fairbench.tasks import get_task
    from fairbench.training import RunOptions, TrainingInterrupted, train

    spec = get_task(task)
    options = RunOptions(
        method=method, task=spec, seed=seed, steps=steps, out=out, data_root=data_root, device=device,
        batch_size=batch_size, checkpoint_every=checkpoint_every, snapshot_every=snapshot_every,
        overrides=_parse_overrides(overrides), name=name, base=base,
    )
    total = spec.training.steps if steps is None else steps
    with progress_bar() as bar:
        handle = bar.add_task(f"{method} seed {seed} on {spec.id}", total=total, info="")

        def progress(step: int, total_steps: int, logs: dict[str, float]) -> None:
            info = " ".join(f"{k}={v:.3f}" for k, v in logs.items())
            bar.update(handle, completed=step, total=total_steps, info=info)

        def phase_log(line: str) -> None:  # phased methods (rebalance): one line per milestone, above the bar
            bar.console.print(line, markup=False, highlight=False, soft_wrap=True)

        try:
            path = train(options, progress, phase_log)
        except TrainingInterrupted as stop:
            err.print(f"interrupted at step {stop.step}; rerun the same command to resume")
            typer.echo(str(stop.checkpoint))
            raise typer.Exit(130) from None
    typer.echo(str(path))


@app.command("import-stylegan2")
@user_errors
def import_stylegan2_cmd(
    weights: Path = typer.Argument(..., help="Converted StyleGAN2 weights: a .pt holding {'g_ema': ..., 'latent_avg': ...}."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the fairbench checkpoint."),
    task: str = typer.Option("ffhq-race", "--task", "-t", help="Task id/alias/YAML the generator is scored on."),
    truncation_psi: float = typer.Option(1.0, "--truncation-psi", help="Truncation psi in [0, 1] (1: none); recorded."),
    noise_mode: str = typer.Option("const", "--noise-mode", help="const (stored noise maps), none, or latent-seeded."),
    channel_multiplier: int = typer.Option(2, "--channel-multiplier", help="2 for config-f."),
    name: str | None = typer.Option(None, "--name", help="Leaderboard entry (default stylegan2-<size>px[-psi<psi>])."),
) -> None:
    """Wrap a converted StyleGAN2 generator as a fairbench checkpoint; NVIDIA .pkl files are refused (code)."""
    from baselines.stylegan2_import import ImportOptions, import_stylegan2
    from fairbench.tasks import get_task

    options = ImportOptions(
        truncation_psi=truncation_psi, noise_mode=noise_mode, channel_multiplier=channel_multiplier, name=name
    )
    ckpt = import_stylegan2(weights, out, get_task(task), options)
    kw = ckpt.arch_kwargs
    typer.echo(
        f"{ckpt.method}: StyleGAN2 {kw['size']} px (style {kw['style_dim']}, {kw['n_mlp']} mapping layers, "
        f"channel multiplier {kw['channel_multiplier']}), psi {kw['truncation_psi']}, noise {kw['noise_mode']}, "
        f"scored at {kw['output_size']} px on task {ckpt.task}"
    )
    typer.echo(str(out))


@app.command("score")
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
    batch_size: int = typer.Option(500, "--batch-size", help="Batch size (speed only; never changes a score)."),
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
    with progress_bar() as bar:
        handles: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in handles:
                handles[stage] = bar.add_task(stage, total=total, info="")
            bar.update(handles[stage], completed=done, total=total)

        options = ScoreOptions(
            n_samples=samples, batch_size=batch_size, device=device, progress=progress, data_root=data_root,
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


@app.command("leaderboard")
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
    from fairbench.leaderboard import HTML_NAME, RUNS_CSV, write_leaderboard

    csv_path, md_path = write_leaderboard(results, out, rank_by, per_seed=per_seed, html=html)
    typer.echo(md_path.read_text(encoding="utf-8"), nl=False)  # as written: a wrapped table row is broken
    typer.echo(str(csv_path))
    typer.echo(str(md_path))
    if per_seed:
        typer.echo(str(csv_path.parent / RUNS_CSV))
    if html:
        typer.echo(str(csv_path.parent / HTML_NAME))


app.command("sweep")(sweep_cmd)
app.command("curve")(curve_cmd)
app.command("gain")(gain_cmd)
app.command("conditions")(conditions_cmd)


@app.command("report")
@user_errors
def report_cmd(
    target: Path = typer.Argument(..., help="A result JSON, or a run folder holding result.json."),
    samples: bool = typer.Option(True, "--samples/--no-samples", help="Sample grids (need the scored submission)."),
    per_row: int = typer.Option(10, "--per-row", help="Samples per grid row."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (for re-sampling a checkpoint)."),
) -> None:
    """PNG figures beside a result: group shares, per-condition heat map, sample grids per judged group."""
    from fairbench.report import make_report

    files = make_report(target, samples=samples, per_row=per_row, device=device)
    for path in (files.shares, files.conditions, *files.samples.values()):
        if path is not None:
            typer.echo(str(path))


@app.command("grid")
@user_errors
def grid_cmd(
    checkpoint: Path = typer.Argument(..., help="Generator checkpoint."),
    out: Path = typer.Option(..., "--out", "-o", help="PNG to write."),
    per_condition: int = typer.Option(8, "--per-condition", help="Samples per class (one row each)."),
    scale: int = typer.Option(3, "--scale", help="Pixel upscaling factor."),
) -> None:
    """Save a PNG grid of samples: one row per condition."""
    from fairbench import checkpoint as ckpt_io
    from fairbench import grids, sampling
    from fairbench.tasks import get_task

    ckpt = ckpt_io.load_checkpoint(checkpoint)
    try:
        task = get_task(ckpt.task)
    except FairbenchError as exc:
        raise FairbenchError(f"{checkpoint}: {exc}") from None
    model = ckpt_io.build_generator(ckpt, checkpoint)
    classes = task.num_classes if task.conditional else 0
    n = per_condition * max(classes, 1)
    images, labels = sampling.generate(model, n, task.sampling.seed, task.image_shape, classes, source=str(checkpoint))
    if labels is not None:
        images = images[labels.argsort(stable=True)]
    grids.save_png(out, grids.image_grid(images, columns=per_condition), scale=scale)
    typer.echo(str(out))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
