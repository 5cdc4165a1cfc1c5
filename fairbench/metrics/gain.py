"""Fairness gain of a generator over its base, KL(base) / KL(new): the rebalancing paper's headline figure
("about 5x" on FFHQ), with intervals that cover.

One pair of runs. Each run's KL interval is its range over a confidence region at level 1 - alpha/2
(`fairbench.metrics.regions`). Both regions hold their true proportions at once with probability at least
1 - alpha (Bonferroni, which needs no independence, so it also holds for the judge-corrected figures, whose
two regions share the judge's calibration noise), and then the true ratio lies in
[lo_base / hi_new, hi_base / lo_new]. The upper end is infinite when the new run's region reaches the
uniform point: a generator that may be exactly fair has an unbounded gain.

Several seeds. The geometric mean of the per-seed ratios with a Student-t interval on their logarithms. It
measures the seed-to-seed spread (what a user retraining the method will see), assuming the log ratios are
roughly normal across seeds; it is undefined when any ratio is 0 or infinite.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from fairbench.errors import FairbenchError
from fairbench.metrics.correction import Calibration
from fairbench.metrics.fairness import ALPHA, metric_intervals

GAIN_METRICS = ("kl_uniform", "kl_uniform_corrected")


@dataclass(frozen=True)
class Gain:
    """KL(base) / KL(new) of one pair of runs; > 1 means the new generator is fairer."""

    metric: str
    base: float
    new: float
    ratio: float  # inf when the new run is exactly uniform, nan when both are
    ci95: tuple[float, float]  # the upper end may be inf

    def to_json(self) -> dict:
        return {"metric": self.metric, "base": self.base, "new": self.new, "ratio": _finite_or_none(self.ratio),
                "ci95": [_finite_or_none(v) for v in self.ci95]}


@dataclass(frozen=True)
class SeedGain:
    """The geometric mean gain over seeds with its t interval, or why there is none."""

    n: int
    geometric_mean: float | None
    ci95: tuple[float, float] | None
    reason: str | None = None

    def to_json(self) -> dict:
        return {"n": self.n, "geometric_mean": self.geometric_mean,
                "ci95": None if self.ci95 is None else list(self.ci95), "reason": self.reason}


def pair_gain(
    base_counts: Sequence[int], new_counts: Sequence[int], calibration: Calibration | None = None, alpha: float = ALPHA
) -> dict[str, Gain]:
    """The gain of `new` over `base` for each of GAIN_METRICS, from the two runs' judged group counts."""
    rows = [np.asarray(c, dtype=np.float64).ravel() for c in (base_counts, new_counts)]
    if len(rows[0]) != len(rows[1]) or len(rows[0]) < 2:
        raise FairbenchError(f"group counts must be two vectors of the same length >= 2, got {len(rows[0])} and "
                             f"{len(rows[1])}")
    table = np.stack(rows)
    if np.any(table < 0) or np.any(table.sum(axis=1) == 0):
        raise FairbenchError("group counts must be non-negative with at least one sample per run")
    if not 0 < alpha < 1:
        raise FairbenchError(f"alpha must be in (0, 1), got {alpha}")
    found = metric_intervals(table, calibration, alpha / 2)
    gains = {}
    for metric in GAIN_METRICS:
        value, lo, hi = (np.asarray(a, dtype=np.float64) for a in found[metric])
        lower = _ratio(lo[0], hi[1])
        upper = _ratio(hi[0], lo[1])
        gains[metric] = Gain(metric, float(value[0]), float(value[1]), _ratio(value[0], value[1]),
                             (0.0 if math.isnan(lower) else lower, math.inf if math.isnan(upper) else upper))
    return gains


def seed_gain(ratios: Sequence[float], alpha: float = ALPHA) -> SeedGain:
    """Geometric mean of per-seed gains with a t interval on their logs (needs 2+ finite, positive ratios)."""
    r = np.asarray(ratios, dtype=np.float64)
    n = len(r)
    if n < 2:
        return SeedGain(n, float(r[0]) if n == 1 and np.isfinite(r[0]) else None, None,
                        "one seed: no seed-to-seed spread to measure")
    if np.any(np.isnan(r)):
        return SeedGain(n, None, None, "a seed's base and new runs are both exactly uniform: no gain to average")
    if not np.all(np.isfinite(r) & (r > 0)):
        return SeedGain(n, None, None, "a seed's gain is 0 or infinite (a run exactly uniform): no log mean")
    logs = np.log(r)
    mean = float(logs.mean())
    half = float(stats.t.ppf(1 - alpha / 2, n - 1) * logs.std(ddof=1) / math.sqrt(n))
    return SeedGain(n, math.exp(mean), (math.exp(mean - half), math.exp(mean + half)))


def _ratio(a: float, b: float) -> float:
    if b > 0:
        return float(a / b)
    return math.inf if a > 0 else math.nan


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
