"""The test of fairness: the p-value of "the generator draws every group equally often".

- Observed (judged) proportions: Pearson's chi-square test of the counts against N/k per group, k - 1
  degrees of freedom. At the sample sizes fairbench scores (hundreds per group and up) its null
  distribution is the chi-square's to well within the simulation tests' tolerance, so a fair generator's
  p-values are uniform.
- Judge-corrected proportions: the same question for the *true* proportions p, given that the judge errs.
  Under H0 p = U, so the judged distribution is q0 = C^T U; the statistic is the squared distance of the
  linear corrected estimate from U in the metric of its delta-method covariance under H0 (sample noise
  and the noise of the calibration counts both), again chi-square with k - 1 degrees of freedom. With a
  perfect judge it is exactly Pearson's statistic.
- Conditions (classes or prompts): one p-value per condition; the worst condition's p-value is adjusted
  for having looked at all of them with Sidak's formula 1 - (1 - p_min)^C, exact for independent
  conditions (their samples are independent), so it too is uniform for a fair generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.special

from fairbench.metrics.regions import corrected_covariance, linear_inverse

PEARSON = "pearson-chi2"
CORRECTED = "corrected-score-chi2"
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


def pearson_statistic(counts: np.ndarray) -> np.ndarray:
    """Rows (R, k) of counts -> (R,) Pearson statistics against the uniform expectation."""
    c = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n = c.sum(axis=1, keepdims=True)
    expected = n / c.shape[1]
    return (np.square(c - expected) / expected).sum(axis=1)


def corrected_statistic(counts: np.ndarray, confusion: np.ndarray, row_sizes: np.ndarray) -> np.ndarray:
    """Rows (R, k) of judged counts -> (R,) score statistics for uniform true proportions (module docstring)."""
    c = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    r, k = c.shape
    n = c.sum(axis=1)
    conf = np.broadcast_to(np.asarray(confusion, dtype=np.float64), (r, k, k))
    uniform = np.full((r, k), 1.0 / k)
    q0 = np.einsum("ri,rij->rj", uniform, conf)
    cov0 = corrected_covariance(q0, n, conf, row_sizes, uniform)
    diff = linear_inverse(c / n[:, None], conf) - uniform
    # The estimate sums to 1, so the covariance is singular along the all-ones direction: drop one coordinate.
    d, v = diff[:, :-1], cov0[:, :-1, :-1]
    return np.einsum("ri,ri->r", d, np.linalg.solve(v, d[..., None])[..., 0])


def chi2_test(statistic: float, k: int, method: str) -> UniformityTest:
    return UniformityTest(float(scipy.special.chdtrc(k - 1, statistic)), float(statistic), k - 1, method)


def sidak_worst(p_values: np.ndarray) -> UniformityTest:
    """The smallest of C p-values, adjusted so that it is itself a p-value for "every condition is fair"."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = -np.expm1(p.size * np.log1p(-min(float(p.min()), 1.0 - 1e-16)))  # 1 - (1 - p_min)^C, stably
    return UniformityTest(float(np.clip(adjusted, 0.0, 1.0)), None, None, SIDAK)
