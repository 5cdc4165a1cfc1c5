"""The proportion chart: each group's observed and corrected share, its 95% interval, and the uniform line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fairbench.entry_identity import derived_name
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
    # Outside the axes, right of them: inside, a legend covers whichever bars and labels sit in its corner.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    return fig


def save_share_bars(result: dict[str, Any], path: Path) -> Path:
    return save_figure(draw_share_bars(result), path)


def _entry(result: dict[str, Any]) -> str:
    """What a report's titles call the result: its entry, config named, and seed. A figure passed around on its
    own must say which training it shows, and 'repfair seed 0' does not when a board has five repfair configs."""
    seed = result.get("seed")
    return entry_label(result) + (f" seed {seed}" if seed is not None else "")


def entry_label(result: dict[str, Any]) -> str:
    """The entry as the board derives its name, saying the config even where the board's name does not:
    'repfair (default config)', 'repfair[clip_norm=10]', 'mine: repfair[clip_norm=10]' (a --name),
    'repfair[config=1a2b3c4d]' (defaults unknown when scored), 'mixed (image set)'."""
    given = result.get("name") if isinstance(result.get("name"), str) else None
    method = result.get("method")
    if not isinstance(method, str) or not method:
        return f"{given or (result.get('submission') or {}).get('name') or '?'} (image set)"
    changed = result.get("config_changed") if isinstance(result.get("config_changed"), dict) else None
    digest = result.get("config_hash") if isinstance(result.get("config_hash"), str) else None
    derived = derived_name(method, changed, digest)
    label = derived
    if changed == {}:
        label += " (default config)"
    elif changed is None and digest is None:
        label += " (config not recorded)"
    return f"{given}: {label}" if given and given != derived else label
