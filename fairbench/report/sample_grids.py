"""Sample grids: one PNG per judged group, a row per condition, each row labelled with its judged share.

A row shows the first samples (in sampling order) of that condition that the judge assigned to the group, so
a reader sees what the judge counted; the share printed is the result's own number (observed, i.e. judged).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairbench.report.figure import new_figure, pct, save_figure
from fairbench.report.share_bars import _entry
from fairbench.report.source import JudgedSamples


@dataclass(frozen=True)
class GridRow:
    condition: str | None  # None for unconditional tasks
    share: float  # the result's observed share of the group within the condition (overall when unconditional)
    indices: tuple[int, ...]  # samples shown: judged the group, of this condition, first in sampling order


def image_grid(images: torch.Tensor, columns: int, pad: int = 2, pad_value: int = 128) -> np.ndarray:
    """uint8 N x C x H x W -> one uint8 H' x W' x C array, row-major, grey padding between tiles."""
    n, c, h, w = images.shape
    rows = (n + columns - 1) // columns
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    array = images.permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, col = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = array[i]
    return grid


def grid_rows(result: dict[str, Any], samples: JudgedSamples, group: int, per_row: int) -> list[GridRow]:
    per = result.get("per_condition")
    if samples.labels is None or not per:
        picked = np.flatnonzero(samples.judged == group)[:per_row]
        return [GridRow(None, float(result["group_proportions"]["observed"][group]), tuple(int(i) for i in picked))]
    rows = []
    for c, name in enumerate(per["conditions"]):
        picked = np.flatnonzero((samples.judged == group) & (samples.labels == c))[:per_row]
        rows.append(GridRow(str(name), float(per["observed"][c][group]), tuple(int(i) for i in picked)))
    return rows


def draw_group_grid(result: dict[str, Any], samples: JudgedSamples, group: int, per_row: int = 10) -> Any:
    name = result["groups"][group]
    rows = grid_rows(result, samples, group, per_row)
    _, channels, h, w = samples.images.shape
    fig = new_figure(1.6 + per_row * 0.5, 0.5 + 0.55 * len(rows))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    blank = np.full((h + 4, per_row * (w + 2) + 2, channels), 255, dtype=np.uint8)
    for ax, row in zip(axes, rows):
        strip = blank.copy()
        if row.indices:
            tiles = image_grid(samples.images[list(row.indices)], columns=per_row)
            strip[: tiles.shape[0], : tiles.shape[1]] = tiles
        ax.imshow(strip[..., 0] if channels == 1 else strip, cmap="gray" if channels == 1 else None, vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        label = f"{row.condition}: {pct(row.share)}" if row.condition is not None else pct(row.share)
        if not row.indices:
            label += " (none)"
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    share = float(result["group_proportions"]["observed"][group])
    fig.suptitle(f"{result.get('task')} · {_entry(result)} · judged {name}: {pct(share)} of all samples", fontsize=9)
    return fig


def draw_labelled_grid(images: Any, per_row: int, row_labels: list[str] | None, title: str, scale: int = 3) -> Any:
    """`fairbench grid`'s figure: the tiles at `scale` pixels per image pixel, a label per row, and a title
    saying what was sampled, so a PNG passed around still says where it came from."""
    grid = image_grid(images, columns=per_row)
    height, width, channels = grid.shape
    fig = new_figure(max(width * scale / 100, 3.0) + 0.8, height * scale / 100 + 0.5)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(grid[..., 0] if channels == 1 else grid, cmap="gray" if channels == 1 else None, vmin=0, vmax=255,
              interpolation="nearest")
    ax.set_xticks([])
    ax.set_frame_on(False)
    if row_labels:
        tile = images.shape[2] + 2  # image_grid's tile height with its padding
        ax.set_yticks([2 + i * tile + images.shape[2] / 2 for i in range(len(row_labels))], labels=row_labels,
                      fontsize=8)
        ax.tick_params(axis="y", length=0)
    else:
        ax.set_yticks([])
    ax.set_title(title, fontsize=9)
    return fig


def save_group_grids(result: dict[str, Any], samples: JudgedSamples, stem: Path, per_row: int = 10) -> dict[str, Path]:
    """{group: PNG path} with paths `<stem>.samples-<group>.png`."""
    out = {}
    for g, name in enumerate(result["groups"]):
        path = stem.with_name(f"{stem.name}.samples-{_safe(name)}.png")
        out[name] = save_figure(draw_group_grid(result, samples, g, per_row), path)
    return out


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(name))
