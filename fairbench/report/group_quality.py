"""Quality per judged group, in one figure beside the shares: each group's FID with its interval and the
feature network's floor for that group (how much of the gap the network itself leaves), its precision,
recall, density and coverage, and its Vendi score with the number of samples it was drawn from.

Drawn for results that record any of these beyond the FID (scored since they were added); older results keep
the figures they had, so a board's report pass adds nothing to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fairbench.board.columns import ENTRY_COLOURS
from fairbench.report.figure import new_figure, save_figure
from fairbench.report.share_bars import _entry
from fairbench.results.names import FID_FLOOR, FID_INTRA, INTRA, PRDC_NAMES, VENDI, VENDI_INTRA

PRDC = PRDC_NAMES
# One colour per metric of the PRDC panel: the boards' palette, without its black and pale grey.
COLOURS = tuple(c for c in ENTRY_COLOURS if c not in ("#000000", "#DDDDDD"))


@dataclass(frozen=True)
class GroupValue:
    value: float | None  # None: not computed for this group (too few samples; the result's `skipped` says why)
    ci95: tuple[float, float] | None = None
    n: int | None = None  # samples it was computed from (PRDC: each side; Vendi: the group's generated samples)
    at_fid_sizes: float | None = None  # the floor only: rescaled to the group's FID sample sizes


@dataclass(frozen=True)
class GroupQuality:
    groups: list[str]
    fid: dict[str, GroupValue]  # empty when the result has no per-group FID
    floor: dict[str, GroupValue]  # the network's floor per group; empty in results older than it
    prdc: dict[str, dict[str, GroupValue]]  # metric -> group -> value; empty when not scored
    vendi: dict[str, GroupValue]
    skipped: dict[str, str]


def group_quality(result: dict[str, Any]) -> GroupQuality | None:
    """What the figure draws, from the result's `per_group`; None when it records nothing beyond the FID."""
    per = result.get("per_group") or {}
    groups = list(result.get("groups") or [])
    if not groups or (not any(name + INTRA in per for name in (*PRDC, VENDI)) and FID_FLOOR not in per):
        return None

    def read(key: str) -> dict[str, GroupValue]:
        entries = per.get(key) or {}
        out = {}
        for group in groups:
            entry = entries.get(group)
            if entry is None:
                out[group] = GroupValue(None)
            else:
                ci = entry.get("ci95")
                n = entry.get("n", (entry.get("n_halves") or [None])[0])
                at = (entry.get("at_fid_sizes") or {}).get("value")
                out[group] = GroupValue(float(entry["value"]), None if ci is None else (float(ci[0]), float(ci[1])), n,
                                        None if at is None else float(at))
        return out if entries else {}

    prdc = {name: read(name + INTRA) for name in PRDC if name + INTRA in per}
    return GroupQuality(groups, read(FID_INTRA), read(FID_FLOOR), prdc, read(VENDI_INTRA),
                        dict(result.get("skipped") or {}))


def draw_group_quality(result: dict[str, Any], data: GroupQuality) -> Any:
    panels = [p for p, present in (("fid", data.fid or data.floor), ("prdc", data.prdc), ("vendi", data.vendi)) if present]
    width = max(3.2, 0.9 * len(data.groups) + 1.6)
    fig = new_figure(width * len(panels) + 1.5, 3.6)
    x = np.arange(len(data.groups))
    network = (result.get("feature_network") or {}).get("id", "?")
    for p, panel in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), p + 1)
        if panel == "fid":
            _fid_panel(ax, x, data)
            ax.set_title(f"FID per group ({network})", fontsize=9)
        elif panel == "prdc":
            width_bar = 0.8 / len(data.prdc)
            for m, (name, values) in enumerate(data.prdc.items()):
                v = np.array([np.nan if values[g].value is None else values[g].value for g in data.groups])
                ax.bar(x + (m - (len(data.prdc) - 1) / 2) * width_bar, v, width_bar, color=COLOURS[m % len(COLOURS)],
                       label=name, gid=f"prdc-{name}")
            ax.axhline(1.0, color="#555555", linewidth=0.6, linestyle=":")
            top = np.nanmax([np.nan if v.value is None else v.value for vals in data.prdc.values() for v in vals.values()] + [1.0])
            ax.set_ylim(0, 1.3 * top)  # room for the legend above the bars
            n = [next((vals[g].n for vals in data.prdc.values() if vals[g].n is not None), None) for g in data.groups]
            sizes = f"; n each side {', '.join('—' if k is None else str(k) for k in n)}" if any(n) else ""
            ax.set_title(f"PRDC per group (k = 5{sizes})", fontsize=9)
            ax.legend(fontsize=7, loc="upper center", ncol=len(data.prdc), frameon=False)
        else:
            v = np.array([np.nan if data.vendi[g].value is None else data.vendi[g].value for g in data.groups])
            ax.bar(x, v, 0.6, color=COLOURS[0], gid="vendi")
            for xi, g in zip(x, data.vendi):
                entry = data.vendi[g]
                if entry.value is not None:
                    text = f"{entry.value:.1f}" + (f" of {entry.n}" if entry.n is not None else "")
                    ax.annotate(text, (xi, entry.value), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7)
            ax.set_title("Vendi score per group\n(effective distinct samples, of n drawn)", fontsize=9)
        ax.set_xticks(x, data.groups, fontsize=8)
        for g, group in enumerate(data.groups):  # a group with no value says so where its bar would be
            missing = (panel == "fid" and data.fid and data.fid[group].value is None) or (
                panel == "prdc" and all(vals[group].value is None for vals in data.prdc.values())) or (
                panel == "vendi" and data.vendi[group].value is None)
            if missing:
                ax.annotate("too few\nsamples", (g, 0), xytext=(0, 4), textcoords="offset points", ha="center",
                            fontsize=7, color="#b00000")
    fig.suptitle(f"{result.get('task')} · {_entry(result)} · quality per judged group", fontsize=9)
    fig.subplots_adjust(wspace=0.3, top=0.82)
    return fig


def _fid_panel(ax: Any, x: np.ndarray, data: GroupQuality) -> None:
    """Bars the per-group FID with its 95% interval; a black tick each group's floor at the FID's sample sizes
    (what a generator drawing that group's real images would score), a grey one the two halves' as measured."""
    if data.fid:
        values = np.array([np.nan if data.fid[g].value is None else data.fid[g].value for g in data.groups])
        cis = [data.fid[g].ci95 for g in data.groups]
        err = None
        if all(ci is not None for ci in cis):
            err = np.clip(np.array([[v - ci[0] for v, ci in zip(values, cis)],  # type: ignore[index]
                                    [ci[1] - v for v, ci in zip(values, cis)]]), 0.0, None)  # type: ignore[index]
        ax.bar(x, values, 0.6, yerr=err, capsize=4, color=COLOURS[5], label="FID (95% interval)", gid="fid")
        ax.set_ylim(0, 1.3 * np.nanmax(np.concatenate([values, [e.value or 0.0 for e in data.floor.values()], [1e-9]])
                                       + (0 if err is None else np.nanmax(err))))
    if data.floor:
        halves = [np.nan if data.floor[g].value is None else data.floor[g].value for g in data.groups]
        ax.scatter(x, halves, marker="_", s=600, linewidths=1.2, color="#888888", zorder=3, gid="floor-halves",
                   label="floor: real half vs half")
        matched = [np.nan if data.floor[g].at_fid_sizes is None else data.floor[g].at_fid_sizes for g in data.groups]
        if not np.isnan(matched).all():
            ax.scatter(x, matched, marker="_", s=900, linewidths=2.5, color="#000000", zorder=4, gid="floor",
                       label="floor at the FID's sample sizes")
            for xi, value in zip(x, matched):
                if not np.isnan(value):
                    ax.annotate(f"{value:.3g}", (xi, value), xytext=(0, -10), textcoords="offset points",
                                ha="center", fontsize=7)
    else:
        ax.text(0.5, 0.95, "floor not recorded (an older result)", transform=ax.transAxes, ha="center", fontsize=7)
    ax.legend(fontsize=7, loc="upper left", frameon=False)


def save_group_quality(result: dict[str, Any], path: Path) -> Path | None:
    """The figure at `path`, or None (nothing written) for a result without per-group quality beyond FID."""
    data = group_quality(result)
    if data is None:
        return None
    return save_figure(draw_group_quality(result, data), path)
