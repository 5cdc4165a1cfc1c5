"""The fairness-quality picture of one task: every entry at (primary fairness metric, main quality metric),
each run with its 95% intervals and the mean over runs, beside the two references a reader measures against:

- the fair-by-construction entries (`groupcond`, which draws each group on purpose), marked apart;
- the real data: the reference split's own KL to uniform (its true groups, no judge) against the feature
  network's floor, the FD between two halves of it (`scoring.quality.network_floor`). Results scored before
  the floor was recorded get it from the task's data when that is here (same cache), else the point is left
  out and the figure says why.

x is KL to uniform (corrected for the judge's errors where the judge allows, as the board ranks), on a
symmetric-log axis: fair entries sit at 1e-5, unfair ones at 0.1-0.7. y is the board's main quality metric
(FID on the task's feature network), on a log axis when it spans more than a factor of 20.

    python -m fairbench.report.tradeoff leaderboard/results/mnist-bicolor --out figures/mnist-bicolor.fairness-quality.png
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fairbench.errors import FairbenchError
from fairbench.board.board import DEFAULT_PRIMARY_METRIC, FALLBACK_PRIMARY_METRIC, TaskBoard
from fairbench.board.columns import ENTRY_COLOURS, QUALITY_ORDER, metric_label
from fairbench.report.figure import new_figure, save_figure
from fairbench.results.names import FID, FID_FLOOR

FAIR_BY_CONSTRUCTION = ("groupcond",)  # methods that draw each group on purpose: the fair reference
KL_LINEAR_BELOW = 1e-3  # the symmetric-log x axis is linear below this


@dataclass(frozen=True)
class RunPoint:
    seed: int | None
    x: float
    x_ci: tuple[float, float] | None
    y: float
    y_ci: tuple[float, float] | None


@dataclass(frozen=True)
class EntryPoints:
    entry: str
    colour: str
    fair_by_construction: bool
    runs: tuple[RunPoint, ...]
    mean: tuple[float, float] | None  # the board's means; None when some run lacks either metric


@dataclass(frozen=True)
class RealPoint:
    x: float  # KL to uniform of the reference's true group shares
    y: float  # the network's floor: FD between two halves of the reference
    n_halves: tuple[int, int]
    y_at_fid_sizes: float | None = None  # the same at the entries' sample sizes (`scoring.quality.floor_at`)


@dataclass(frozen=True)
class Tradeoff:
    task: str
    x_metric: str
    y_metric: str
    x_label: str
    y_label: str
    entries: tuple[EntryPoints, ...]
    real: RealPoint | None
    notes: tuple[str, ...] = ()  # what is not drawn, and why


def kl_to_uniform(counts: list[int] | np.ndarray) -> float:
    """KL(p || uniform) of the shares `counts` give, in nats (0 log 0 = 0)."""
    c = np.asarray(counts, dtype=np.float64)
    p = c[c > 0] / c.sum()
    return float((p * np.log(p * len(c))).sum())


def tradeoff_data(board: TaskBoard, floor: dict[str, Any] | None = None) -> Tradeoff:
    """The points of `board`'s picture. `floor`: the task's `fid_floor` record (`value`, `n_halves`,
    `reference_counts`) for results that do not carry it; the runs' own record comes first."""
    x_metric = next((m for m in (DEFAULT_PRIMARY_METRIC, FALLBACK_PRIMARY_METRIC) if m in board.metric_names), None)
    y_metric = next((m for m in QUALITY_ORDER if m in board.metric_names), None)  # whatever the board ranks by
    if x_metric is None or y_metric is None:
        raise FairbenchError(f"task {board.task}: its results need a KL to uniform and a quality metric for this picture")
    notes: list[str] = []
    entries = []
    for i, row in enumerate(board.rows):
        runs = []
        for run in row.runs:
            x, y = run.metrics.get(x_metric), run.metrics.get(y_metric)
            if x is None or y is None or x.value is None or y.value is None:
                continue
            runs.append(RunPoint(run.seed, x.value, x.ci95, y.value, y.ci95))
        if not runs:
            notes.append(f"{row.entry}: no run has both metrics")
            continue
        xm, ym = row.metrics[x_metric].mean, row.metrics[y_metric].mean
        entries.append(EntryPoints(
            entry=row.entry,
            colour=ENTRY_COLOURS[i % len(ENTRY_COLOURS)],  # the board's order, so colours match its other charts
            fair_by_construction=any(run.method in FAIR_BY_CONSTRUCTION for run in row.runs),
            runs=tuple(runs),
            mean=None if xm is None or ym is None else (xm, ym),
        ))
    real = None
    if y_metric != FID:
        notes.append(f"real data not drawn: the floor is a plain FD, {y_metric} is not")
    else:
        recorded = recorded_floor(board) or floor
        if recorded is None:
            notes.append("real data not drawn: the results predate the network's floor and the task's data is not here")
        elif not recorded.get("reference_counts"):
            notes.append("real data not drawn: the reference's groups are unknown, so its KL to uniform is")
        else:
            counts = list(recorded["reference_counts"].values())
            at = (recorded.get("at_fid_sizes") or {}).get("value")
            real = RealPoint(kl_to_uniform(counts), float(recorded["value"]), tuple(recorded["n_halves"]),  # type: ignore[arg-type]
                             None if at is None else float(at))
    return Tradeoff(
        task=board.task, x_metric=x_metric, y_metric=y_metric,
        x_label=f"{metric_label(board, x_metric)} ({x_metric})", y_label=f"{metric_label(board, y_metric)} ({y_metric})",
        entries=tuple(entries), real=real, notes=tuple(notes),
    )


def recorded_floor(board: TaskBoard) -> dict[str, Any] | None:
    """The first `fid_floor` a run of the board records (every run of one board shares its reference and
    network, so they agree), or None in results older than it."""
    for row in board.rows:
        for run in row.runs:
            floor = json.loads(Path(run.path).read_text(encoding="utf-8")).get(FID_FLOOR)
            if isinstance(floor, dict) and isinstance(floor.get("value"), (int, float)):
                return floor
    return None


def draw_tradeoff(data: Tradeoff) -> Any:
    fig = new_figure(8.0, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    for i, entry in enumerate(data.entries):
        marker = "*" if entry.fair_by_construction else "o"
        xs = np.array([r.x for r in entry.runs])
        ys = np.array([r.y for r in entry.runs])
        xerr = _errors(xs, [r.x_ci for r in entry.runs])
        yerr = _errors(ys, [r.y_ci for r in entry.runs])
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="none", ecolor=entry.colour, elinewidth=0.6, alpha=0.6, zorder=2)
        ax.scatter(xs, ys, s=18, color=entry.colour, marker=marker, edgecolors="#333333", linewidths=0.3,
                   alpha=0.8, zorder=3, gid=f"runs-{i}")
        if entry.mean is not None:
            n = len(entry.runs)
            label = f"{entry.entry} ({n} run{'s' if n != 1 else ''})" + (", fair by construction" if entry.fair_by_construction else "")
            ax.scatter([entry.mean[0]], [entry.mean[1]], s=110 if entry.fair_by_construction else 60, color=entry.colour,
                       marker=marker, edgecolors="#000000", linewidths=0.9, zorder=4, gid=f"mean-{i}", label=label)
    if data.real is not None:
        real = data.real
        if real.y_at_fid_sizes is not None:  # what a generator drawing the real images would score
            ax.axhline(real.y_at_fid_sizes, color="#555555", linestyle=":", linewidth=1, zorder=1)
            ax.scatter([real.x], [real.y_at_fid_sizes], s=70, facecolors="#ffffff", edgecolors="#555555",
                       linewidths=1.2, marker="X", zorder=5, gid="real-at-fid-sizes",
                       label="real data at the entries' sample sizes (FD ∝ 1/n)")
        # White-filled: the palette's black is an entry's colour.
        ax.scatter([real.x], [real.y], s=110, facecolors="#ffffff", edgecolors="#000000", linewidths=1.2, marker="X",
                   zorder=5, gid="real",
                   label=f"real data: reference half vs half ({real.n_halves[0]} + {real.n_halves[1]} images)")
    ax.set_xscale("symlog", linthresh=KL_LINEAR_BELOW, linscale=0.5)
    ax.set_xlim(left=0.0)
    ys = [r.y for e in data.entries for r in e.runs] + ([data.real.y] if data.real is not None else [])
    if ys and min(ys) > 0 and max(ys) / min(ys) > 20:
        ax.set_yscale("log")
    ax.set_xlabel(f"{data.x_label}, symmetric log (linear below {KL_LINEAR_BELOW:g}); ← fairer", fontsize=8)
    ax.set_ylabel(f"{data.y_label}; ↓ better", fontsize=8)
    title = f"{data.task}: fairness against quality; small marks are runs (95% intervals), large the mean over runs"
    ax.set_title(title, fontsize=9)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if data.notes:
        fig.text(0.01, -0.02, "; ".join(data.notes), fontsize=7, color="#555555", va="top")
    return fig


def _errors(values: np.ndarray, cis: list[tuple[float, float] | None]) -> np.ndarray | None:
    """Asymmetric error bars from intervals; None when a run has none (older files). Clipped at 0: an
    interval is never drawn through its own point."""
    if any(ci is None for ci in cis):
        return None
    lo = np.array([ci[0] for ci in cis])  # type: ignore[index]
    hi = np.array([ci[1] for ci in cis])  # type: ignore[index]
    return np.vstack([np.maximum(values - lo, 0.0), np.maximum(hi - values, 0.0)])


def save_tradeoff(data: Tradeoff, path: Path) -> Path:
    return save_figure(draw_tradeoff(data), path)


def floor_from_data(board: TaskBoard, data_root: Path | None) -> tuple[dict[str, Any] | None, str | None]:
    """(the task's `fid_floor` from the data found here, None) or (None, why not), for results older than it;
    never downloads, and never for another network or data than the results'."""
    from fairbench import paths
    from fairbench.scoring.quality import reference_floor
    from fairbench.task_registry import get_task

    run = board.rows[0].runs[0]
    raw = json.loads(Path(run.path).read_text(encoding="utf-8"))
    try:
        with paths.no_downloads():
            report = reference_floor(get_task(board.task), raw, data_root)
    except FairbenchError as exc:
        return None, str(exc)
    return report.fid_floor, None


def main(argv: list[str] | None = None) -> int:
    """Draw one task's picture from its folder of result files (`make leaderboard`)."""
    from fairbench.board.board import build_leaderboard
    from fairbench.board.records import read_results

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="one task's folder of result JSONs")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--data-root", type=Path, default=None, help="for the floor of results older than it")
    args = parser.parse_args(argv)
    try:
        boards = build_leaderboard(read_results(args.results))
        if len(boards) != 1:
            raise FairbenchError(f"{args.results}: results of {len(boards)} tasks; give one task's folder")
        (board,) = boards
        floor = None
        if recorded_floor(board) is None:
            floor, why = floor_from_data(board, args.data_root)
            if why is not None:
                print(f"note: {board.task}: no floor for the real data point ({why})", file=sys.stderr)
        save_tradeoff(tradeoff_data(board, floor), args.out)
    except FairbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
