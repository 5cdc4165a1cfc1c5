"""What the Markdown and HTML boards put in their columns: which columns lead, their human headers, one number
format per column, and the colours of charts with one series per entry.

A reader looks for the rank, the entry, the primary metric, the main quality metric and the judged shares, so
those come first (`lead_metrics`); every other metric follows. Headers are words ("KL to uniform
(corrected)"); the raw metric name stays one hover (HTML) or one key line (Markdown) away, since it is what
the CSV, the result files and `--rank-by` use.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fairbench.board.board import FEATURE_METRICS, TaskBoard
from fairbench.results.names import (
    COND_MEAN,
    COND_WORST,
    CORRECTED,
    COVERAGE_INTRA_WORST,
    DEBIASED,
    DENSITY_INTRA_WORST,
    FD_L1,
    FD_L2,
    FID,
    FID_BALANCED,
    FID_INTRA_MEAN,
    FID_INTRA_WORST,
    KID,
    KL_UNIFORM,
    KL_UNIFORM_NORMALIZED,
    PRECISION_INTRA_WORST,
    RECALL_INTRA_WORST,
    VENDI,
    VENDI_INTRA_WORST,
)

# The board's main quality metric: the first of these the board has (FID on the task's feature network).
QUALITY_ORDER = (FID, FID_BALANCED, FID_INTRA_MEAN, KID, FID_INTRA_WORST)

# KID is stored as computed (fairbench.metrics.frechet.kid returns the mean unbiased MMD², no factor), whereas
# clean-fid and most papers print KID x 10^3: the unit goes wherever KID is shown so neither is read as the other.
KID_UNIT = "the mean unbiased squared MMD as computed (×1, not the ×10³ most papers print)"
METRIC_UNITS = {KID: KID_UNIT}

_BASES = (  # longest first: the name's prefix, then its modifiers
    (KL_UNIFORM_NORMALIZED, "KL to uniform / ln |S|"),
    (KL_UNIFORM, "KL to uniform"),
    (FD_L1, "L1 distance to uniform"),
    (FD_L2, "L2 distance to uniform"),
)
_MODIFIERS = (
    (CORRECTED, "corrected"),
    (DEBIASED, "debiased"),
    (COND_MEAN, "mean over conditions"),
    (COND_WORST, "worst condition"),
)
_QUALITY_LABELS = {
    FID: "FID",
    FID_BALANCED: "FID, balanced reference",
    FID_INTRA_MEAN: "FID per group, mean",
    FID_INTRA_WORST: "FID per group, worst",
    KID: "KID, unscaled",
    PRECISION_INTRA_WORST: "precision per group, worst",
    RECALL_INTRA_WORST: "recall per group, worst",
    DENSITY_INTRA_WORST: "density per group, worst",
    COVERAGE_INTRA_WORST: "coverage per group, worst",
    VENDI: "Vendi score",
    VENDI_INTRA_WORST: "Vendi score per group, worst",
}


def metric_label(board: TaskBoard, name: str) -> str:
    """The header a person reads: "KL to uniform (corrected)", "FID (domain-mnist)", "KID, unscaled (domain-mnist)".
    Fairness metrics without `_corrected` say "observed" (the judge's raw shares); unknown names stay raw."""
    if name in _QUALITY_LABELS:
        network = (board.feature_network or {}).get("id") if name in FEATURE_METRICS else None
        return _QUALITY_LABELS[name] + (f" ({network})" if network else "")
    for prefix, words in _BASES:
        if name.startswith(prefix):
            rest, mods = name[len(prefix):], []
            for suffix, word in _MODIFIERS:
                if rest.startswith(suffix):
                    rest, mods = rest[len(suffix):], [*mods, word]
            if rest:  # a name this table does not know: better raw than half translated
                return name
            if "corrected" not in mods:
                mods.insert(0, "observed")
            return f"{words} ({', '.join(mods)})"
    return name


def lead_metrics(board: TaskBoard) -> tuple[str, str | None]:
    """(primary metric, main quality metric or None): the two metric columns right after the entry."""
    quality = next((m for m in QUALITY_ORDER if m in board.metric_names and m != board.primary_metric), None)
    return board.primary_metric, quality


def ordered_metrics(board: TaskBoard, shown: Sequence[str]) -> tuple[list[str], list[str]]:
    """`shown` split into the lead metrics (primary, quality) and the rest, each in board order."""
    lead = [m for m in lead_metrics(board) if m is not None and m in shown]
    return lead, [m for m in shown if m not in lead]


# ------------------------------------------------------------------------------------------ number format

MIN_SIGNIFICANT = 3  # the column's largest value shows at least this many significant digits
MAX_SIGNIFICANT = 6  # ... and at most this many: beyond, the spread is rounding noise, not information
NOISE = 1e-9  # differences below this fraction of the column's largest value are float noise


@dataclass(frozen=True)
class NumberFormat:
    """One column's format: fixed `decimals`, or with `exponent` a mantissa with `decimals` decimals times
    10**exponent, the same exponent on every cell ("4.05e-05", "0.12e-05")."""

    decimals: int
    exponent: int | None = None

    def __call__(self, x: float) -> str:
        if self.exponent is None:
            text = f"{x:.{self.decimals}f}"
        else:
            text = f"{x / 10.0 ** self.exponent:.{self.decimals}f}e{self.exponent:+03d}"
        return text[1:] if text.startswith("-") and not any(c in "123456789" for c in text.split("e")[0]) else text

    def cell(self, mean: float | None, std: float | None, missing: str) -> str:
        if mean is None:
            return missing
        return self(mean) if std is None else f"{self(mean)} ± {self(std)}"


def _decimals_for(value: float, significant: int) -> int:
    """Decimals that show `value` (> 0) to `significant` significant digits."""
    return significant - 1 - math.floor(math.log10(value))


def column_format(cells: Iterable[tuple[float | None, float | None]]) -> NumberFormat:
    """The one format of a column of (mean, std) cells, chosen from the column's spread.

    Decimals are the fewest that show the smallest std to 2 significant digits, every nonzero mean to at least
    one (a tiny value never reads as 0), and two means apart by more than both their stds as different numbers,
    with the largest value to 3-6 significant digits. Values between 1e-3 and 1e6 are fixed-point; a column of
    tinier or larger values shares one exponent. Missing cells do not count."""
    pairs = [(m, s if s is not None and math.isfinite(s) else None) for m, s in cells
             if m is not None and math.isfinite(m)]
    top = max([abs(m) for m, _ in pairs] + [s for _, s in pairs if s is not None], default=0.0)
    if top == 0.0:
        return NumberFormat(0)
    floor = top * NOISE
    needed = [_decimals_for(top, MIN_SIGNIFICANT)]
    needed += [_decimals_for(s, 2) for _, s in pairs if s is not None and s > floor]
    needed += [_decimals_for(abs(m), 1) for m, _ in pairs if abs(m) > floor]
    ordered = sorted(pairs)
    for (a, sa), (b, sb) in zip(ordered, ordered[1:]):
        gap = b - a
        if gap > floor and gap > max(sa or 0.0, sb or 0.0):
            needed.append(_decimals_for(gap, 1))
    decimals = min(max(needed), _decimals_for(top, MAX_SIGNIFICANT))
    if 1e-3 <= top < 1e6:
        return NumberFormat(max(decimals, 0))
    exponent = math.floor(math.log10(top))
    return NumberFormat(min(max(decimals + exponent, 0), MAX_SIGNIFICANT - 1), exponent)


# ------------------------------------------------------------------------------------------ colours

# One colour per entry in charts with a series per entry (`fairbench conditions`, the board's share bars).
# The Okabe-Ito palette (Okabe & Ito 2008, "Color Universal Design"), safe for the common colour-vision
# deficiencies, with its pale yellow and black last; extended to 12 by four colours of Paul Tol's 'muted'
# scheme (indigo, wine, olive, pale grey), which keep every pair at CIE76 ΔE >= 26
# (tests/unit/board/test_palette.py).
ENTRY_COLOURS = (
    "#0072B2",  # Okabe-Ito blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
    "#F0E442",  # yellow
    "#332288",  # Tol muted indigo
    "#882255",  # wine
    "#999933",  # olive
    "#DDDDDD",  # pale grey
)
