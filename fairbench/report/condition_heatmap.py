"""The per-condition heat map of a conditional task: the share of each condition's samples judged each group."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fairbench.report.figure import new_figure, pct, save_figure
from fairbench.report.share_bars import KINDS, _entry


def condition_shares(result: dict[str, Any], kind: str) -> tuple[list[str], list[str], np.ndarray]:
    """(conditions, groups, matrix conditions x groups) of `kind` shares; raises KeyError when not conditional."""
    per = result["per_condition"]
    matrix = np.asarray(per[kind], dtype=np.float64)
    return list(per["conditions"]), list(result["groups"]), matrix


def has_conditions(result: dict[str, Any]) -> bool:
    per = result.get("per_condition")
    return isinstance(per, dict) and bool(per.get("conditions"))


def draw_condition_heatmap(result: dict[str, Any]) -> Any:
    """Two panels (observed, corrected), conditions as rows, groups as columns, each cell annotated."""
    conditions, groups, _ = condition_shares(result, "observed")
    fig = new_figure(2.2 + 1.6 * len(groups) * 2, 1.2 + 0.32 * len(conditions))
    for k, kind in enumerate(KINDS):
        _, _, matrix = condition_shares(result, kind)
        ax = fig.add_subplot(1, 2, k + 1)
        image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
        image.set_gid(f"heatmap-{kind}")
        ax.set_xticks(range(len(groups)), groups)
        ax.set_yticks(range(len(conditions)), conditions)
        ax.set_title(kind, fontsize=9)
        for (i, j), v in np.ndenumerate(matrix):
            ax.text(j, i, pct(v), ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    fig.colorbar(image, ax=fig.axes, shrink=0.9, label="share of the condition's samples")
    fig.suptitle(f"{result.get('task')} · {_entry(result)} · group share per condition", fontsize=9)
    return fig


def save_condition_heatmap(result: dict[str, Any], path: Path) -> Path:
    return save_figure(draw_condition_heatmap(result), path)
