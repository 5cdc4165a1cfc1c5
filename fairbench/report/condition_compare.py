"""Per-condition shares of one group across entries and seeds (the RepFair paper's Figure 2: the share of
white-background samples per digit, per method): where a method's imbalance sits, and how much it varies
from seed to seed, in one picture. Bars are the mean over an entry's seeds, dots the seeds themselves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fairbench.errors import FairbenchError
from fairbench.board.columns import ENTRY_COLOURS
from fairbench.report.figure import new_figure, save_figure


@dataclass(frozen=True)
class ConditionShares:
    """One entry's share of `group` per condition: seeds x conditions."""

    entry: str
    seeds: tuple[int | None, ...]
    shares: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        return self.shares.mean(axis=0)


def collect_condition_shares(
    results: list[tuple[str, dict[str, Any]]], group: str | None, kind: str = "observed"
) -> tuple[str, str, list[str], list[ConditionShares]]:
    """(task, group, conditions, one ConditionShares per entry in first-seen order) from (entry, result) pairs.

    Every result must be of one conditional task with the same conditions and groups; `group` defaults to
    the task's last group (the minority in the shipped bicolor tasks)."""
    if not results:
        raise FairbenchError("no results to compare")
    task = results[0][1].get("task")
    groups = list(results[0][1].get("groups") or [])
    chosen = group if group is not None else (groups[-1] if groups else "")
    if chosen not in groups:
        raise FairbenchError(f"unknown group {chosen!r}; the task's groups are {', '.join(groups)}")
    conditions = None
    by_entry: dict[str, list[tuple[int | None, np.ndarray]]] = {}
    for entry, result in results:
        per = result.get("per_condition")
        if not isinstance(per, dict) or not per.get("conditions"):
            raise FairbenchError(f"{entry}: its result has no per-condition shares (an unconditional task?)")
        if result.get("task") != task or list(result.get("groups") or []) != groups:
            raise FairbenchError(f"{entry}: task {result.get('task')!r}, but the first result is {task!r}")
        if conditions is None:
            conditions = list(per["conditions"])
        elif list(per["conditions"]) != conditions:
            raise FairbenchError(f"{entry}: other conditions than the first result's")
        if kind not in per:
            raise FairbenchError(f"{entry}: no {kind} per-condition shares in its result")
        by_entry.setdefault(entry, []).append((result.get("seed"), np.asarray(per[kind], dtype=np.float64)[:, groups.index(chosen)]))
    entries = []
    for entry, runs in by_entry.items():
        runs.sort(key=lambda r: (r[0] is None, r[0] if r[0] is not None else 0))
        entries.append(ConditionShares(entry, tuple(s for s, _ in runs), np.stack([v for _, v in runs])))
    return str(task), chosen, conditions or [], entries


def draw_condition_comparison(task: str, group: str, conditions: list[str], entries: list[ConditionShares],
                              uniform: float, kind: str = "observed") -> Any:
    fig = new_figure(max(6.0, 0.45 * len(conditions) * max(1, len(entries)) ** 0.5 + 3), 3.6)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(conditions))
    width = 0.8 / max(1, len(entries))
    for e, shares in enumerate(entries):
        # The board's palette (Okabe-Ito, extended to 12 by Paul Tol's 'muted'): distinct for the 12 entries of
        # mnist-bicolor; a thin dark edge keeps the pale ones visible on white.
        colour = ENTRY_COLOURS[e % len(ENTRY_COLOURS)]
        offset = x + (e - (len(entries) - 1) / 2) * width
        n = len(shares.seeds)
        ax.bar(offset, shares.mean, width * 0.92, color=colour, alpha=0.8, edgecolor="#333333", linewidth=0.3,
               gid=f"bars-{e}", label=f"{shares.entry} ({n} seed{'s' if n != 1 else ''})")
        for row in shares.shares:
            ax.scatter(offset, row, s=9, color=colour, edgecolors="#333333", linewidths=0.3, zorder=3)
    ax.axhline(uniform, color="#555555", linestyle="--", linewidth=1, label=f"uniform ({100 * uniform:.0f}%)")
    ax.set_xticks(x, conditions)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("condition")
    ax.set_ylabel(f"share judged {group} ({kind})")
    ax.set_title(f"{task}: share of {group} per condition; bars = mean over seeds, dots = seeds", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def save_condition_comparison(path: Path, task: str, group: str, conditions: list[str],
                              entries: list[ConditionShares], uniform: float, kind: str = "observed") -> Path:
    return save_figure(draw_condition_comparison(task, group, conditions, entries, uniform, kind), path)
