"""One hyper-parameter against a group's share and a quality metric, every seed a dot (the RepFair paper's
Figure 6: the clip norm C against fairness and FID). Only results that differ in that one hyper-parameter are
compared: any other difference in the method's config would be read as the parameter's effect."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fairbench.errors import FairbenchError
from fairbench.report.figure import PALETTE, new_figure, save_figure
from fairbench.results.names import KL_UNIFORM

COLOUR = PALETTE[0]


@dataclass(frozen=True)
class ParameterPoint:
    """The runs at one value of the parameter: their seeds, group shares and metric values, in seed order."""

    value: float
    label: str  # how the value is written on the axis ("5 (default)" when the results left it unset)
    seeds: tuple[int | None, ...]
    shares: tuple[float, ...]
    kl: tuple[float | None, ...]  # kl_uniform: unlike a share, its mean over seeds cannot hide a collapse
    metric: tuple[float | None, ...]


@dataclass(frozen=True)
class ParameterSweep:
    task: str
    method: str
    param: str
    group: str
    metric: str
    uniform: float
    points: tuple[ParameterPoint, ...]  # by increasing value


def _number(value: Any, param: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FairbenchError(f"{path}: {param} = {value!r} is not a finite number")
    return float(value)


def collect_parameter_sweep(
    results: list[tuple[str, dict[str, Any]]], param: str, group: str | None, metric: str,
    default: float | None = None,
) -> ParameterSweep:
    """A ParameterSweep from (path, result) pairs of one task and method whose configs differ in `param` only.

    A result that leaves `param` unset (None: the method's own default) is placed at `default`, which must
    then be given: the result does not say what its method made of None."""
    if not results:
        raise FairbenchError("no results to compare")
    first_path, first = results[0]
    task, method = first.get("task"), first.get("method")
    groups = list(first.get("groups") or [])
    chosen = group if group is not None else (groups[-1] if groups else "")
    if chosen not in groups:
        raise FairbenchError(f"unknown group {chosen!r}; the task's groups are {', '.join(groups)}")
    reference: dict[str, Any] | None = None
    by_value: dict[float, list[tuple[int | None, float, float | None, float | None]]] = {}
    unset = False
    for path, result in results:
        config = result.get("config")
        if result.get("task") != task or result.get("method") != method:
            raise FairbenchError(f"{path}: {result.get('method')} on {result.get('task')}, but {first_path} is "
                                 f"{method} on {task}; give one task's and one method's results")
        if not isinstance(config, dict) or param not in config:
            raise FairbenchError(f"{path}: its method config has no {param!r}")
        others = {k: v for k, v in config.items() if k != param}
        if reference is None:
            reference = others
        elif others != reference:
            differ = sorted(k for k in set(others) | set(reference) if others.get(k) != reference.get(k))
            raise FairbenchError(f"{path}: differs from {first_path} in {', '.join(differ)} as well as {param}; "
                                 f"give results that differ in {param} only")
        if config[param] is None:
            if default is None:
                raise FairbenchError(f"{path}: leaves {param} unset (its method's default); say which value "
                                     "that is with --default")
            value, unset = float(default), True
        else:
            value = _number(config[param], param, path)
        share = (result.get("group_shares") or {}).get(chosen, {}).get("observed", {}).get("value")
        if share is None:
            raise FairbenchError(f"{path}: no observed share of {chosen!r}")
        metrics = result.get("metrics") or {}
        measured = metrics.get(metric)
        if measured is None and metric not in (result.get("skipped") or {}):
            raise FairbenchError(f"{path}: no metric {metric!r}; it has {', '.join(sorted(metrics))}")
        kl = (metrics.get(KL_UNIFORM) or {}).get("value")
        by_value.setdefault(value, []).append(
            (result.get("seed"), float(share), kl, None if measured is None else measured.get("value")))
    points = []
    for value in sorted(by_value):
        runs = sorted(by_value[value], key=lambda r: (r[0] is None, r[0] or 0))
        label = f"{value:g}" + (" (default)" if unset and value == default else "")
        seeds, shares, kls, measured = zip(*runs)
        points.append(ParameterPoint(value, label, seeds, shares, kls, measured))
    return ParameterSweep(str(task), str(method), param, chosen, metric, 1.0 / len(groups), tuple(points))


def _mean(values: tuple[float | None, ...]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def draw_parameter_sweep(sweep: ParameterSweep) -> Any:
    fig = new_figure(11.5, 3.4)
    fig.subplots_adjust(wspace=0.32)
    x = [p.value for p in sweep.points]
    logx = len(x) > 1 and min(x) > 0 and max(x) / min(x) >= 10
    panels = (  # no mean line for the share: seeds collapsed onto either side would average to "fair"
        ("share", f"share judged {sweep.group} (observed)", lambda p: p.shares),
        ("kl", "kl_uniform", lambda p: p.kl),
        ("metric", sweep.metric, lambda p: p.metric),
    )
    for i, (gid, ylabel, values_of) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        means = [_mean(values_of(p)) for p in sweep.points]
        known = [(v, m) for v, m in zip(x, means) if m is not None]
        if known and gid != "share":
            ax.plot([v for v, _ in known], [m for _, m in known], color=COLOUR, linewidth=1.2, gid=f"{gid}-mean")
        for point in sweep.points:
            ys = [y for y in values_of(point) if y is not None]
            ax.scatter([point.value] * len(ys), ys, s=14, color=COLOUR, alpha=0.7, zorder=3)
        if gid == "share":
            ax.axhline(sweep.uniform, color="#555555", linestyle="--", linewidth=1,
                       label=f"uniform ({100 * sweep.uniform:.0f}%)")
            ax.set_ylim(-0.02, 1.02)
            ax.legend(fontsize=7, loc="best")
        else:
            ax.set_ylim(bottom=0)  # distances and FIDs from zero: a zoomed axis would magnify noise
        if logx:
            ax.set_xscale("log")
        ax.set_xticks(x, [p.label for p in sweep.points], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel(sweep.param)
        ax.set_ylabel(ylabel)
    counts = sorted({len(p.seeds) for p in sweep.points})
    seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    fig.suptitle(f"{sweep.task}, {sweep.method}: {sweep.param} against fairness and {sweep.metric} "
                 f"({seeds} seeds a value; dots = seeds, lines = means)", fontsize=9)
    return fig


def save_parameter_sweep(path: Path, sweep: ParameterSweep) -> Path:
    return save_figure(draw_parameter_sweep(sweep), path)
