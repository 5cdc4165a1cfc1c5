"""Fairness gain of a generator over its base, KL(base) / KL(new): the rebalancing paper's headline figure
("about 5x" on FFHQ), with intervals that cover.

One pair of runs. Each run's KL interval is taken at level 1 - alpha/2 (`fairbench.metrics.fairness`:
the profile interval for observed shares, the range over the corrected shares' region for corrected ones).
Both hold at once with probability at least 1 - alpha (Bonferroni, which needs no independence, so it also
holds for the judge-corrected figures, which share the judge's calibration noise), and then the true ratio
lies in [lo_base / hi_new, hi_base / lo_new]. The upper end is infinite when the new run's region reaches the
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
    base_counts: Sequence[int], new_counts: Sequence[int], calibration: Calibration | None = None,
    alpha: float = ALPHA, metrics: Sequence[str] = GAIN_METRICS,
) -> dict[str, Gain]:
    """The gain of `new` over `base` for each of `metrics` (GAIN_METRICS), from the two runs' judged counts."""
    rows = [np.asarray(c, dtype=np.float64).ravel()[None] for c in (base_counts, new_counts)]
    found = pair_gains(rows[0], rows[1], calibration, alpha, metrics)
    return {metric: Gain(metric, *(float(v[0]) for v in found[metric][:3]),
                         (float(found[metric][3][0]), float(found[metric][4][0]))) for metric in metrics}


def pair_gains(
    base: np.ndarray, new: np.ndarray, calibration: Calibration | None = None, alpha: float = ALPHA,
    metrics: Sequence[str] = GAIN_METRICS,
) -> dict[str, tuple[np.ndarray, ...]]:
    """Rows of pairs at once: (base value, new value, ratio, lower, upper) per metric, each of shape (R,)."""
    base, new = np.atleast_2d(np.asarray(base, dtype=np.float64)), np.atleast_2d(np.asarray(new, dtype=np.float64))
    if base.shape != new.shape or base.shape[1] < 2:
        raise FairbenchError(f"group counts must be two vectors of the same length >= 2, got {base.shape[1]} and "
                             f"{new.shape[1]}")
    table = np.concatenate([base, new])
    if np.any(table < 0) or np.any(table.sum(axis=1) == 0):
        raise FairbenchError("group counts must be non-negative with at least one sample per run")
    if not 0 < alpha < 1:
        raise FairbenchError(f"alpha must be in (0, 1), got {alpha}")
    unknown = set(metrics) - set(GAIN_METRICS)
    if unknown:
        raise FairbenchError(f"no gain for {sorted(unknown)}; choose from {list(GAIN_METRICS)}")
    found = metric_intervals(table, calibration, alpha / 2, names=metrics)
    r = len(base)
    out = {}
    for metric in metrics:
        value, lo, hi = (np.asarray(a, dtype=np.float64) for a in found[metric])
        lower = _ratios(lo[:r], hi[r:])
        upper = _ratios(hi[:r], lo[r:])
        out[metric] = (value[:r], value[r:], _ratios(value[:r], value[r:]),
                       np.where(np.isnan(lower), 0.0, lower), np.where(np.isnan(upper), math.inf, upper))
    return out


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


def _ratios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, with x / 0 = inf for x > 0 and 0 / 0 = nan (no gain to speak of)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.where(a > 0, math.inf, math.nan))


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
