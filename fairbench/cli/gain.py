"""`fairbench gain`: how much fairer a generator is than its base (KL(base) / KL(new)), per seed and over
seeds, beside the change in quality. The statistics are in `fairbench.metrics.gain`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich import box
from rich.console import Console
from rich.table import Table

from fairbench import atomic
from fairbench.cli.common import user_errors
from fairbench.cli.guard import writable_file
from fairbench.errors import FairbenchError

if TYPE_CHECKING:  # late at run time: the board's records load pandas and scipy, which `fairbench tasks` never needs
    from fairbench.metrics.correction import Calibration
    from fairbench.metrics.gain import SeedGain

QUALITY = ("fid", "kid")


@dataclass(frozen=True)
class ScoredRun:
    """What a gain needs from one result file."""

    path: Path
    task: str
    seed: int | None
    judge_sha256: str | None
    counts: list[int]
    calibration: Calibration | None
    quality: dict[str, float]


def read_scored_run(path: Path) -> ScoredRun:
    from fairbench.board.records import read_result
    from fairbench.metrics.correction import Calibration

    record = read_result(path)  # schema, task and metrics checked, one-line errors naming the file
    data = json.loads(path.read_text(encoding="utf-8"))
    counts = data.get("group_counts")
    if not isinstance(counts, list) or len(counts) < 2 or not all(isinstance(c, int) and c >= 0 for c in counts):
        raise FairbenchError(f"{path}: no judged group counts (group_counts) in this result")
    judge = data.get("judge") or {}
    calibration = None
    if judge.get("confusion") is not None:
        calibration = Calibration.build(np.asarray(judge["confusion"], dtype=np.float64),
                                        None if judge.get("confusion_counts") is None
                                        else np.asarray(judge["confusion_counts"]), len(counts))
    quality = {m: record.metrics[m].value for m in QUALITY if m in record.metrics and record.metrics[m].value is not None}
    return ScoredRun(path, record.task, record.seed, record.judge_sha256, counts, calibration, quality)


def check_pair(base: ScoredRun, new: ScoredRun) -> None:
    """Only runs judged alike compare: the same task, group set and judge file."""
    if base.task != new.task:
        raise FairbenchError(f"{new.path}: task {new.task!r}, but its base {base.path} is {base.task!r}")
    if len(base.counts) != len(new.counts):
        raise FairbenchError(f"{new.path}: {len(new.counts)} groups, but its base {base.path} has {len(base.counts)}")
    if base.judge_sha256 != new.judge_sha256:
        raise FairbenchError(f"{new.path}: scored with another judge file than its base {base.path}; rescore both")


@user_errors
def gain_cmd(
    base: list[Path] = typer.Option(..., "--base", "-b", help="Result JSON of a base run (repeat: one per seed)."),
    new: list[Path] = typer.Option(..., "--new", "-n", help="Result JSON of the run to compare, paired with --base in order."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Also write the figures as JSON."),
) -> None:
    """KL(base) / KL(new) per pair with a 95% interval (Bonferroni over the two runs' regions), and the
    geometric mean over pairs with a t interval on log gains (seed-to-seed spread); > 1 means fairer."""
    from fairbench.metrics.gain import GAIN_METRICS, pair_gain, seed_gain

    if len(base) != len(new):
        raise FairbenchError(f"give as many --new as --base results (got {len(new)} and {len(base)})")
    if out is not None:
        writable_file(out, "--out")
    pairs = [(read_scored_run(b), read_scored_run(n)) for b, n in zip(base, new)]
    for b, n in pairs:
        check_pair(b, n)
    rows, ratios = [], {metric: [] for metric in GAIN_METRICS}
    table = Table(caption="gain = KL(base) / KL(new), > 1 is fairer; 95% intervals", box=box.SIMPLE)
    for col in ("seed", "kl_uniform", "gain", "corrected gain", "fid"):
        table.add_column(col, no_wrap=True)
    for b, n in pairs:
        gains = pair_gain(b.counts, n.counts, b.calibration)  # one judge file, so one calibration
        quality = {m: {"base": b.quality[m], "new": n.quality[m]} for m in QUALITY if m in b.quality and m in n.quality}
        rows.append({"base": str(b.path), "new": str(n.path), "seed": n.seed,
                     "gain": {m: g.to_json() for m, g in gains.items()}, "quality": quality})
        for metric in GAIN_METRICS:
            ratios[metric].append(gains[metric].ratio)
        observed, corrected = gains["kl_uniform"], gains["kl_uniform_corrected"]
        fid = f"{quality['fid']['base']:.3g}→{quality['fid']['new']:.3g}" if "fid" in quality else "-"
        table.add_row("-" if n.seed is None else str(n.seed), f"{observed.base:.3f}→{observed.new:.3f}",
                      _with_interval(observed.ratio, observed.ci95), _with_interval(corrected.ratio, corrected.ci95), fid)
    Console().print(table)
    summary = {}
    for metric in GAIN_METRICS:
        summary[metric] = seed_gain(ratios[metric])
        typer.echo(_summary_line(metric, summary[metric]))
    if out is not None:
        payload = {"pairs": rows, "over_seeds": {m: s.to_json() for m, s in summary.items()}}
        atomic.write_text(out, json.dumps(payload, indent=2) + "\n")
        typer.echo(str(out))


def _fmt(x: float | None) -> str:
    if x is None or math.isnan(x):
        return "-"
    return "inf" if math.isinf(x) else f"{x:.3g}"


def _with_interval(value: float, ci95: tuple[float, float]) -> str:
    return f"{_fmt(value)} [{_fmt(ci95[0])}, {_fmt(ci95[1])}]"


def _summary_line(metric: str, s: SeedGain) -> str:
    if s.ci95 is None:
        return f"{metric}, {s.n} seed(s): no mean gain interval ({s.reason})"
    return f"{metric}, {s.n} seeds: mean gain {_with_interval(s.geometric_mean or math.nan, s.ci95)} (geometric; t on logs)"
