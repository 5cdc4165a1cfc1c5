"""What every figure shares: matplotlib on the Agg backend (no display), and an atomic PNG write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never a window, never a display server

import matplotlib.pyplot as plt  # noqa: E402  (after the backend choice)

from fairbench import atomic  # noqa: E402

DPI = 100


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
