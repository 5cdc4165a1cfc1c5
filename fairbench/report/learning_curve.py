"""Learning curves from training snapshots (`fairbench run --snapshot-every N`): how quality and group shares
move with the training step, and the step where the quality metric stopped improving (the campaign's budget).

Each snapshot RUN/snapshots/stepNNNNNNN.pt is scored like any checkpoint; its result is kept beside it as
stepNNNNNNN.json (stepNNNNNNN.nN.json for a sample count other than the task's; written atomically), so a rerun
scores only new snapshots and a killed run loses at most one.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import FuncFormatter, LogFormatter, MaxNLocator

from fairbench import atomic
from fairbench.errors import FairbenchError
from fairbench.report.figure import new_figure, save_figure

SNAPSHOT = re.compile(r"^step(\d{7})\.pt$")


@dataclass(frozen=True)
class CurvePoint:
    run: str  # a label for the run: "<method folder> seed<S>"
    step: int
    metrics: dict[str, float]  # every scalar metric of the snapshot's result
    shares: dict[str, float]  # judged (observed) share per group


@dataclass(frozen=True)
class CurveSummary:
    run: str
    metric: str
    best_step: int
    best_value: float
    last_step: int
    last_value: float

    @property
    def still_improving(self) -> bool:
        """The best value is the last snapshot's: more training might still help."""
        return self.best_step == self.last_step


def snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of every snapshot in a run folder, by step."""
    folder = Path(run_dir) / "snapshots"
    if not folder.is_dir():
        raise FairbenchError(f"{run_dir}: no snapshots/ folder (train with --snapshot-every N to keep snapshots)")
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := SNAPSHOT.match(p.name)))
    if not found:
        raise FairbenchError(f"{folder}: no stepNNNNNNN.pt snapshots")
    return found


def run_label(run_dir: Path) -> str:
    """runs/<task>/<method>[@k=v]/seed<S> -> "<method>[@k=v] seed<S>"."""
    run_dir = Path(run_dir)
    return f"{run_dir.parent.name} {run_dir.name}"


def point_from_result(run: str, step: int, result: dict[str, Any]) -> CurvePoint:
    metrics = {k: float(v["value"]) for k, v in (result.get("metrics") or {}).items() if v is not None}
    groups = list(result.get("groups") or [])
    observed = (result.get("group_proportions") or {}).get("observed") or []
    return CurvePoint(run, step, metrics, {g: float(p) for g, p in zip(groups, observed)})


def score_run(
    run_dir: Path,
    score: Callable[[Path], dict[str, Any]],
    n_samples: int | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> list[CurvePoint]:
    """Every snapshot of one run as a curve point; `score(checkpoint)` gives a result dict, drawn with
    `n_samples` (None: the task's), and is cached as JSON under a name that says which. `progress(label,
    step, done)` is called before each snapshot is scored, with the number of this run's snapshots done."""
    label = run_label(run_dir)
    points = []
    for step, path in snapshots(run_dir):
        cached = path.with_suffix(".json" if n_samples is None else f".n{n_samples}.json")
        if cached.exists():
            result = json.loads(cached.read_text())
        else:
            if progress is not None:
                progress(label, step, len(points))
            result = score(path)
            atomic.write_text(cached, json.dumps(result, indent=2, allow_nan=False) + "\n")
        points.append(point_from_result(label, step, result))
    return points


def summarise(points: list[CurvePoint], metric: str) -> list[CurveSummary]:
    """Per run: the step with the lowest `metric` (lower is better for the FID family) and the last one."""
    out = []
    for run in dict.fromkeys(p.run for p in points):
        mine = [p for p in points if p.run == run and metric in p.metrics]
        if not mine:
            continue
        best = min(mine, key=lambda p: (p.metrics[metric], p.step))
        last = max(mine, key=lambda p: p.step)
        out.append(CurveSummary(run, metric, best.step, best.metrics[metric], last.step, last.metrics[metric]))
    return out


def curves_csv(points: list[CurvePoint], metric: str) -> str:
    groups = list(dict.fromkeys(g for p in points for g in p.shares))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["run", "step", metric, *[f"share_{g}" for g in groups]])
    for p in points:
        value = p.metrics.get(metric)
        writer.writerow([p.run, p.step, "" if value is None else f"{value:.6g}",
                         *[f"{p.shares[g]:.6f}" if g in p.shares else "" for g in groups]])
    return buffer.getvalue()


def step_label(step: float, _position: object = None) -> str:
    """A short tick label (2k, 12.5k, 1.2M): five-digit step counts written out in full overlap on a 9-inch
    two-panel figure."""
    for scale, suffix in ((1_000_000, "M"), (1_000, "k")):
        if abs(step) >= scale:
            return f"{step / scale:.4g}{suffix}"
    return f"{step:.4g}"


def draw_learning_curves(points: list[CurvePoint], metric: str) -> Any:
    """Two panels sharing the step axis: `metric` (log scale) and the judged share of the first group, one
    line per run, with the uniform share dashed."""
    if not points:
        raise FairbenchError("no snapshots to plot")
    groups = list(dict.fromkeys(g for p in points for g in p.shares))
    fig = new_figure(9.0, 3.6)
    quality_ax, share_ax = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for run in dict.fromkeys(p.run for p in points):
        mine = sorted((p for p in points if p.run == run), key=lambda p: p.step)
        steps = np.array([p.step for p in mine])
        values = np.array([p.metrics.get(metric, np.nan) for p in mine])
        (line,) = quality_ax.plot(steps, values, marker="o", markersize=3, label=run)
        if groups:
            share = np.array([p.shares.get(groups[0], np.nan) for p in mine])
            share_ax.plot(steps, 100 * share, marker="o", markersize=3, color=line.get_color(), label=run)
    if np.nanmin([p.metrics.get(metric, np.nan) for p in points] + [np.inf]) > 0:
        quality_ax.set_yscale("log")
        for set_formatter in (quality_ax.yaxis.set_major_formatter, quality_ax.yaxis.set_minor_formatter):
            set_formatter(LogFormatter(labelOnlyBase=False))  # 20, 40, 60 rather than 2 x 10^1
    quality_ax.set_xlabel("training step")
    quality_ax.set_ylabel(f"{metric} (lower is better)")
    quality_ax.grid(alpha=0.3)
    if groups:
        share_ax.axhline(100 / len(groups), color="grey", linestyle="--", linewidth=1, label="uniform")
        share_ax.set_ylim(-2, 102)
        share_ax.set_ylabel(f"judged share of {groups[0]} (%)")
    share_ax.set_xlabel("training step")
    share_ax.grid(alpha=0.3)
    for ax in (quality_ax, share_ax):
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(step_label))
    share_ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def save_learning_curves(points: list[CurvePoint], metric: str, png: Path) -> tuple[Path, Path]:
    """The figure and its numbers (CSV beside it, same stem)."""
    png = Path(png)
    table = png.with_suffix(".csv")
    atomic.write_text(table, curves_csv(points, metric))
    return save_figure(draw_learning_curves(points, metric), png), table
