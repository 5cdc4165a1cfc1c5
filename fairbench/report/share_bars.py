"""The proportion chart: each group's observed and corrected share, its 95% interval, and the uniform line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fairbench.errors import FairbenchError
from fairbench.report.figure import new_figure, pct, save_figure

KINDS = ("observed", "corrected")
COLOURS = {"observed": "#7f9cbf", "corrected": "#1f3a5f"}


@dataclass(frozen=True)
class ShareBar:
    group: str
    kind: str  # "observed" (judged) or "corrected" (judge errors undone)
    value: float
    ci95: tuple[float, float] | None  # None in result files written before `group_shares`


def share_bars(result: dict[str, Any]) -> list[ShareBar]:
    """The bars, from `group_shares` (with intervals), else from `group_proportions` (older files: none)."""
    groups = result.get("groups")
    if not isinstance(groups, list) or not groups:
        raise FairbenchError("result has no 'groups' to plot")
    shares = result.get("group_shares")
    bars = []
    for g, name in enumerate(groups):
        for kind in present_kinds(result):
            if shares:
                entry = shares[name][kind]
                bars.append(ShareBar(name, kind, float(entry["value"]), (float(entry["ci95"][0]), float(entry["ci95"][1]))))
            else:
                bars.append(ShareBar(name, kind, float(result["group_proportions"][kind][g]), None))
    return bars


def present_kinds(result: dict[str, Any]) -> tuple[str, ...]:
    """observed and corrected; observed only for a judge without a confusion matrix (e.g. FairFace)."""
    proportions = result.get("group_proportions") or {}
    return tuple(kind for kind in KINDS if kind in proportions) or KINDS


def draw_share_bars(result: dict[str, Any]) -> Any:
    """A matplotlib figure of `share_bars(result)`; one bar container per kind, in group order."""
    bars = share_bars(result)
    groups = list(result["groups"])
    fig = new_figure(max(4.0, 1.3 * len(groups) + 2), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(groups))
    width = 0.38
    for k, kind in enumerate(present_kinds(result)):
        mine = [b for b in bars if b.kind == kind]
        values = np.array([b.value for b in mine])
        err = None
        if all(b.ci95 is not None for b in mine):
            err = np.array([[b.value - b.ci95[0] for b in mine], [b.ci95[1] - b.value for b in mine]])  # type: ignore[index]
            err = np.clip(err, 0.0, None)
        ax.bar(x + (k - 0.5) * width, values, width, yerr=err, capsize=4, label=kind, color=COLOURS[kind],
               gid=f"bars-{kind}")
        for xi, v in zip(x + (k - 0.5) * width, values):
            ax.annotate(pct(v), (xi, v), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    uniform = 1.0 / len(groups)
    ax.axhline(uniform, color="#c0392b", linestyle="--", linewidth=1, label=f"uniform ({pct(uniform)})", gid="uniform")
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("share of samples")
    note = "95% simultaneous intervals" if result.get("group_shares") else "no intervals in this (older) result"
    ax.set_title(f"{result.get('task')} · {_entry(result)} · group shares ({note})", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    return fig


def save_share_bars(result: dict[str, Any], path: Path) -> Path:
    return save_figure(draw_share_bars(result), path)


def _entry(result: dict[str, Any]) -> str:
    name = result.get("method") or (result.get("submission") or {}).get("name") or "?"
    seed = result.get("seed")
    return f"{name} seed {seed}" if seed is not None else str(name)
