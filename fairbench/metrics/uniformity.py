"""The test of fairness: the p-value of "the generator draws every group equally often".

It is the test the metric intervals invert (`profile`) at the metric value 0, so a p-value below 0.05 and
an interval that excludes 0 are one statement, never two that can disagree.

- Observed (judged) proportions, k > 2 groups: the likelihood-ratio (G) statistic 2 sum n_i ln(n_i k / N),
  chi-square with k - 1 degrees of freedom: the profile deviance of "KL = 0" (also of fd_l1 = 0 and
  fd_l2 = 0: all three single out the same point U).
- Two groups: the count of one group is Binomial(N, 1/2) under fairness, so the exact two-sided mid-p value
  is used instead of a chi-square approximation: P(further from N/2) + 1/2 P(as far). A discrete count
  cannot give exactly uniform p-values; the mid-p ones are as close as a deterministic rule gets (mean 1/2).
  The interval then uses the deviance at which this test rejects as its critical value at 0.
- Judge-corrected proportions: the corrected metrics' intervals invert the Gaussian profile test of the
  corrected estimate (`corrected_profile`), whose statistic at 0 is the Wald statistic |x - U|^2_Sigma on
  chi-square with k - 1 degrees of freedom ("corrected-gaussian"). Where that model cannot be built the
  intervals are ranges over the corrected shares' simultaneous region (`regions.score_box`), and the test is
  that region's: the largest alpha whose 1 - alpha region still holds U (bisection on alpha; nested regions).
- Conditions (classes or prompts): one p-value per condition; the worst condition's p-value is adjusted
  for having looked at all of them with Sidak's formula 1 - (1 - p_min)^C, exact for independent
  conditions (their samples are independent), so it too is uniform for a fair generator.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.special
import scipy.stats

from fairbench.metrics.profile import deviance
from fairbench.metrics.regions import score_box

G_TEST = "g-test"
MIDP = "exact-binomial-midp"
CORRECTED = "corrected-region"  # only where the Gaussian model cannot be built (`fairness`)
CORRECTED_WALD = "corrected-gaussian"
SIDAK = "sidak-min"


@dataclass(frozen=True)
class UniformityTest:
    """H0: every group is drawn with probability 1/k. A small p-value is evidence of unfairness."""

    p_value: float
    statistic: float | None
    df: int | None
    method: str

    def to_json(self) -> dict:
        return {"p_value": self.p_value, "statistic": self.statistic, "df": self.df, "method": self.method}


def g_statistic(counts: np.ndarray) -> np.ndarray:
    """Rows (R, k) of (pseudo-)counts -> (R,) likelihood-ratio statistics against the uniform expectation."""
    c = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    return np.maximum(deviance(c, np.full(c.shape, 1.0 / c.shape[1])), 0.0)


def binomial_midp(counts: np.ndarray) -> np.ndarray:
    """Rows (R, 2) of integer counts -> (R,) exact two-sided mid-p values of a fair coin."""
    c = np.rint(np.atleast_2d(np.asarray(counts, dtype=np.float64))).astype(np.int64)  # counts: integers
    n = c.sum(axis=1)
    low = c.min(axis=1)
    tie = 2 * low == n  # exactly N/2: no count is "as far" on the other side
    below = np.where(low > 0, scipy.special.bdtr(np.maximum(low - 1, 0), n, 0.5), 0.0)  # P(X <= low - 1)
    at = scipy.stats.binom.pmf(low, n, 0.5)
    p = np.where(tie, 1.0 - 0.5 * at, 2.0 * below + at)
    return np.clip(p, 0.0, 1.0)


def midp_critical_deviance(n: np.ndarray, alpha: float) -> np.ndarray:
    """(R,) G statistic halfway between the last count the two-group mid-p test rejects at alpha and the
    first it accepts: the deviance threshold that makes the interval's "excludes 0" the test's "p < alpha"."""
    return np.array([_midp_critical(int(total), float(alpha)) for total in np.asarray(n)])


@functools.lru_cache(maxsize=256)
def _midp_critical(total: int, alpha: float) -> float:
    low = np.arange(total // 2 + 1)  # the smaller count; the test and G depend on nothing else
    table = np.stack([low, total - low], axis=1)
    rejected = np.flatnonzero(binomial_midp(table) < alpha)  # a prefix: mid-p grows with the smaller count
    if rejected.size == 0:  # too few samples to ever reject: nothing excludes 0
        return math.inf
    g = g_statistic(table)
    if rejected[-1] + 1 >= len(low):
        return float(g[rejected[-1]] / 2)
    return float(0.5 * (g[rejected[-1]] + g[rejected[-1] + 1]))


def g_test(statistic: float, k: int, method: str = G_TEST) -> UniformityTest:
    return UniformityTest(float(scipy.special.chdtrc(k - 1, statistic)), float(statistic), k - 1, method)


def raw_tests(counts: np.ndarray) -> list[UniformityTest]:
    """One test per row of judged counts: exact mid-p for two groups, the G test otherwise."""
    c = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    stats = g_statistic(c)
    if c.shape[1] == 2:
        return [UniformityTest(float(p), float(s), 1, MIDP) for p, s in zip(binomial_midp(c), stats)]
    return [g_test(s, c.shape[1]) for s in stats]


def region_p_values(q_hat: np.ndarray, n: np.ndarray, confusion: np.ndarray, row_sizes: np.ndarray) -> np.ndarray:
    """(R,) the largest alpha at which the corrected shares' 1 - alpha region (`regions.score_box`) still
    contains U, to a relative 1e-6: the p-value whose "< 0.05" is the 95% region's "U is outside"."""
    q = np.atleast_2d(q_hat)
    r, k = q.shape
    lo, hi = np.full(r, np.log(1e-16)), np.zeros(r)  # ln alpha: U inside at lo (or never), outside above hi

    def holds(log_alpha):
        with np.errstate(all="ignore"):  # at alpha near 1e-16 some rows' quadratics have no real root
            box = score_box(q, np.asarray(n), confusion, row_sizes, np.exp(log_alpha))  # each row its own alpha
        return np.all((box.lower <= 1 / k + 1e-12) & (1 / k - 1e-12 <= box.upper), axis=1)

    inside_top = holds(np.full(r, np.log(1 - 1e-9)))
    never = ~holds(lo)
    for _ in range(45):
        mid = 0.5 * (lo + hi)
        inside = holds(mid)
        lo, hi = np.where(inside, mid, lo), np.where(inside, hi, mid)
    return np.where(inside_top, 1.0, np.exp(lo))  # never inside: reported as its bound, 1e-16


def sidak_worst(p_values: np.ndarray) -> UniformityTest:
    """The smallest of C p-values, adjusted so that it is itself a p-value for "every condition is fair"."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = -np.expm1(p.size * np.log1p(-min(float(p.min()), 1.0 - 1e-16)))  # 1 - (1 - p_min)^C, stably
    return UniformityTest(float(np.clip(adjusted, 0.0, 1.0)), None, None, SIDAK)
