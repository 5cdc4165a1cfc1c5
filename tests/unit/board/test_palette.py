"""The entry palette stays distinct for 12 entries (mnist-bicolor's board has 12), measured here in CIE Lab
with a conversion written for this test, and the per-condition chart draws each entry in its own colour."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from matplotlib.colors import to_hex

from fairbench.board.columns import ENTRY_COLOURS
from fairbench.board.html import BAR_COLOURS
from fairbench.report.condition_compare import ConditionShares, draw_condition_comparison

# CIE76 ΔE of about 2.3 is a just-noticeable difference; 20 keeps bars and legend swatches apart at a glance.
MIN_DELTA_E = 20.0


def srgb_to_lab(hex_colour: str) -> np.ndarray:
    """sRGB (IEC 61966-2-1) -> linear RGB -> XYZ (D65) -> CIE L*a*b*."""
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255.0 for i in (1, 3, 5)])
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = to_xyz @ linear / np.array([0.95047, 1.0, 1.08883])  # relative to the D65 white
    eps = (6 / 29) ** 3
    f = np.where(xyz > eps, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def delta_e76(a: str, b: str) -> float:
    return float(np.linalg.norm(srgb_to_lab(a) - srgb_to_lab(b)))


def test_lab_conversion_matches_reference_values() -> None:
    assert srgb_to_lab("#FFFFFF") == pytest.approx([100.0, 0.0, 0.0], abs=0.05)
    assert srgb_to_lab("#000000") == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert srgb_to_lab("#FF0000") == pytest.approx([53.24, 80.09, 67.20], abs=0.1)  # published sRGB red
    assert delta_e76("#777777", "#787878") < 1.0  # neighbouring greys are not "distinct"


def test_twelve_entry_colours_are_pairwise_distinct() -> None:
    assert len(ENTRY_COLOURS) >= 12 and len(set(c.lower() for c in ENTRY_COLOURS)) == len(ENTRY_COLOURS)
    worst = min(itertools.combinations(ENTRY_COLOURS[:12], 2), key=lambda pair: delta_e76(*pair))
    assert delta_e76(*worst) >= MIN_DELTA_E, f"{worst} are only ΔE {delta_e76(*worst):.1f} apart"


def test_the_previous_palette_would_fail() -> None:
    """The check can fail: the chart's old 8 colours, cycled for 12 entries, repeat."""
    old = ("#1f3a5f", "#c0392b", "#2e8b57", "#d4a017", "#7f9cbf", "#8e44ad", "#e67e22", "#16a085")
    cycled = [old[e % len(old)] for e in range(12)]
    assert min(delta_e76(a, b) for a, b in itertools.combinations(cycled, 2)) < MIN_DELTA_E


def test_share_bars_use_the_palette_without_black_and_grey() -> None:
    assert BAR_COLOURS == tuple(c for c in ENTRY_COLOURS if c not in ("#000000", "#DDDDDD"))
    assert len(BAR_COLOURS) >= 10  # cifar10-lt has 10 groups


def test_per_condition_chart_gives_each_of_12_entries_its_colour() -> None:
    entries = [ConditionShares(f"entry{e}", (0, 1), np.full((2, 3), e / 12)) for e in range(12)]
    fig = draw_condition_comparison("t", "white", ["0", "1", "2"], entries, 0.5)
    colours = []
    for e in range(12):
        bars = [p for p in fig.axes[0].patches if p.get_gid() == f"bars-{e}"]
        assert len(bars) == 3
        colours.append(to_hex(bars[0].get_facecolor(), keep_alpha=False).upper())
    assert colours == [c.upper() for c in ENTRY_COLOURS[:12]]
