"""What every figure shares: matplotlib on the Agg backend (no display), and an atomic PNG write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window, never a display server

import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)

from fairbench import atomic  # noqa: E402

DPI = 100
# Series colours in order, the house blue first (the leaderboard page's header band).
PALETTE = ("#1f3a5f", "#c0392b", "#2e8b57", "#d4a017", "#7f9cbf", "#8e44ad", "#e67e22", "#16a085")


def new_figure(width: float, height: float) -> Any:
    return plt.figure(figsize=(width, height), dpi=DPI)


def save_figure(fig: Any, path: Path) -> Path:
    """Write `fig` as a PNG atomically and free it (pyplot keeps every open figure otherwise)."""
    try:
        with atomic.atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def pct(x: float) -> str:
    return f"{100 * x:.1f}%"
