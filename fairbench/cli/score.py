"""`fairbench score`: sample and score a checkpoint or an image set, then print what a reader needs first."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from fairbench.chunking import SCORE_CHUNK
from fairbench.cli.common import err, on_interrupt, progress_bar, user_errors
from fairbench.cli.guard import writable_file
from fairbench.errors import FairbenchError
from fairbench.results import names
from fairbench.results.sidecar import REPORT_SUFFIX, is_report_path


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
        "clip, inception, dinov2 (ViT-L/14) or dinov2-vits14/-vitb14/-vitl14. Recorded in the result; boards "
        "never mix networks.",
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
    if out is not None:
        target = out
    elif checkpoint is not None:
        target = checkpoint.parent / "result.json"
    else:  # beside the image set, never inside an image folder (it would become part of the submission)
        target = images.parent / f"{images.stem if images.is_file() else images.name}.result.json"  # type: ignore[union-attr]
    if is_report_path(target):  # the board reads such names as report sidecars, never as results
        raise FairbenchError(f"--out {target}: names ending in {REPORT_SUFFIX} are kept for `fairbench report`'s "
                             "figure index; give another name")
    writable_file(target, "--out" if out else "result file")  # before the work, not after it
    on_interrupt("no result was written (it is written only when scoring completes); rerun the same command")
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
        else:
            result = score_image_set(task, images, options)  # type: ignore[arg-type]
    path = write_result(target, result)
    if as_json:
        typer.echo(dumps(result), nl=False)
        return
    _print_score(result)
    typer.echo(str(path))


QUALITY_SUMMARY = ((names.FID, "FID"), (names.FID_BALANCED, "FID balanced"), (names.KID, "KID"), (names.NIQE, "NIQE"),
                   (names.BRISQUE, "BRISQUE"), (names.CLIPIQA, "CLIP-IQA"), (names.EQFACE, "EQ-Face"))
"""The quality metrics the summary shows, by the names readers know; the rest stay in the result JSON."""


def _print_score(result: Any) -> None:
    """A summary that fits 80 columns: who was scored, the shares with their intervals, the primary metric
    and the test, the headline quality metrics. The JSON's path follows as the last line: it holds the rest."""
    console = Console(width=min(Console().width, 100), highlight=False)
    for line in summary_lines(result):
        console.print(line, markup=False, soft_wrap=False)


def summary_lines(result: Any) -> list[str]:
    from fairbench.board.board import DEFAULT_PRIMARY_METRIC, FALLBACK_PRIMARY_METRIC

    seed = f" · seed {result.seed}" if result.seed is not None else ""
    lines = [f"{result.task} · {entry_name(result)}{seed} · {result.n_samples} samples"]
    kind = "corrected" if "corrected" in result.group_proportions else "observed"
    judge = result.judge
    accuracy = f", accuracy {100 * judge.accuracy:.1f}%" if judge.accuracy is not None else ""
    how = "shares corrected for its errors" if kind == "corrected" else "shares as judged (no error correction)"
    lines.append(f"fairness: judge {judge.id}{accuracy}; {how}")
    if result.group_shares:
        width = max(len(g) for g in result.group_shares)
        for group, entry in result.group_shares.items():
            share = entry[kind]
            lo, hi = share["ci95"]
            lines.append(f"  {group:<{width}}  {100 * share['value']:5.1f}%  [{100 * lo:.1f}, {100 * hi:.1f}]"
                         f"  {entry['count']} judged")
    primary = next((m for m in (DEFAULT_PRIMARY_METRIC, FALLBACK_PRIMARY_METRIC) if m in result.metrics), None)
    headline = []
    if primary is not None:
        m = result.metrics[primary]
        label = "KL to uniform" + (", corrected" if primary.endswith("corrected") else "")
        headline.append(f"{label} {format_interval(m['value'], m['ci95'])} (ranks the board)")
    if result.fairness_tests:
        headline.append(_fairness_test_line(result.fairness_tests))
    lines.extend(f"  {part}" for part in headline)
    lines.append(_recognisable_line(result))
    quality = [f"{label} {format_interval(result.metrics[key]['value'], result.metrics[key]['ci95'])}"
               for key, label in QUALITY_SUMMARY if key in result.metrics]
    if quality:
        network = result.feature_network["id"] if result.feature_network else None
        where = f" (FID family on {network}; not comparable across networks)" if network else ""
        lines.append(f"quality{where}")
        lines.extend(_pack(quality, indent="  ", width=78))
    reasons: dict[str, list[str]] = {}  # one line per reason: a missing reference split skips five metrics
    for name, why in result.skipped.items():
        reasons.setdefault(why, []).append(name)
    lines.extend(f"skipped {', '.join(names)}: {why}" for why, names in reasons.items())
    rest = len(result.metrics) - (primary is not None) - len(quality)
    lines.append(f"{rest} more metrics, intervals, per-group and per-condition results in the JSON:")
    return lines


def _recognisable_line(result: Any) -> str:
    """How many samples the task's networks cannot place, and what that means for the board's gate."""
    from fairbench.board.board import GATE_BOUND

    check = result.recognisable
    if not check or check.get("unrecognisable_share") is None:
        why = (check or {}).get("not_checked") or "scored before the check existed"
        return f"  recognisable samples: not checked ({why})"
    share = check["unrecognisable_share"]
    lo, hi = check["unrecognisable_ci95"]
    gate = "passes" if share <= GATE_BOUND else "fails"
    return (f"  unrecognisable: {100 * share:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]; real images "
            f"{100 * check['calibration']['real_flagged_share']:.1f}%; {gate} the {100 * GATE_BOUND:.0f}% gate")


def format_interval(value: float, ci: Any) -> str:
    """'0.0030 [0.0008, 0.0072]', '224 [207, 245]': decimals chosen so the interval's width keeps two
    significant digits, the value and both ends with the same decimals."""
    lo, hi = float(ci[0]), float(ci[1])
    scale = hi - lo if hi > lo else abs(value)
    if not math.isfinite(scale) or scale == 0:
        decimals = 4
    else:
        decimals = min(max(0, 1 - math.floor(math.log10(scale))), 8)
    return f"{value:.{decimals}f} [{lo:.{decimals}f}, {hi:.{decimals}f}]"


def _pack(parts: list[str], indent: str, width: int) -> list[str]:
    """Join `parts` with ' · ' into lines no wider than `width` (a part is never split)."""
    lines: list[str] = []
    current = ""
    for part in parts:
        joined = f"{current} · {part}" if current else part
        if current and len(indent) + len(joined) > width:
            lines.append(indent + current)
            current = part
        else:
            current = joined
    if current:
        lines.append(indent + current)
    return lines


def entry_name(result: Any) -> str:
    """The name the result's leaderboard entry gets (before telling apart same-named entries of one board)."""
    from fairbench.entry_identity import derived_name

    if result.name:
        return result.name
    if result.method is None:
        return result.submission.name
    return derived_name(result.method, result.config_changed, result.config_hash)


def _fairness_test_line(tests: dict) -> str:
    """'test of equal shares: p = 0.21; worst condition p = 0.04 (Sidak)', corrected where the judge allows."""

    def fmt(p: float) -> str:
        return f"= {p:.2g}" if p >= 1e-4 else "< 1e-4"

    key = "uniform_corrected" if "uniform_corrected" in tests else "uniform"
    line = f"test of equal shares: p {fmt(tests[key]['p_value'])}"
    worst = "uniform_corrected_cond_worst" if key == "uniform_corrected" else "uniform_cond_worst"
    if worst in tests:
        line += f"; worst condition p {fmt(tests[worst]['p_value'])} (Sidak)"
    return line
