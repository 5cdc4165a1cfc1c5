"""Less biased point estimates of KL to uniform, beside the plug-in value (which stays the definition).

The plug-in KL(p-hat || U) is biased upward: for a fair generator its mean is about (k - 1) / (2N), and
the worst of C conditions is further inflated because a maximum picks the noisiest condition.

- One distribution: to second order E[KL(p-hat)] = KL(p) + 1/2 sum_g Var(p-hat_g) / p_g (the Hessian of
  sum p ln p is diag(1/p)). For judged proportions Var = p_g (1 - p_g) / N and this is Miller and Madow's
  correction (m - 1) / (2N), m the number of groups seen. For judge-corrected proportions the variance is
  the delta-method one of `regions.corrected_covariance`, which includes the calibration noise; groups
  within two standard deviations of 0 are left out of the sum, since the expansion does not hold there
  and 1/p would explode.
- Worst condition: the bootstrap estimate of the remaining bias of the maximum (resample every
  condition's counts, recompute the debiased maximum, subtract the mean excess).

Estimates are clipped at 0, the smallest KL there is: at the uniform point this keeps a small positive
bias, far below the plug-in's (measured in tests/unit/metrics/test_statistics.py).
"""

from __future__ import annotations

import numpy as np

from fairbench.metrics.correction import correct_rows
from fairbench.metrics.regions import corrected_variance
from fairbench.metrics.row_metrics import kl_rows


def debiased_kl(counts: np.ndarray) -> np.ndarray:
    """Rows (R, k) of judged counts -> (R,) Miller-Madow-corrected KL to uniform, clipped at 0."""
    c = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n = c.sum(axis=1)
    seen = (c > 0).sum(axis=1)
    return np.maximum(kl_rows(c / n[:, None]) - (seen - 1) / (2.0 * n), 0.0)


def debiased_kl_corrected(
    counts: np.ndarray, confusion: np.ndarray, row_sizes: np.ndarray, corrected: np.ndarray | None = None
) -> np.ndarray:
    """Rows (R, k) of judged counts -> (R,) bias-corrected KL of the judge-corrected proportions."""
    c = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n = c.sum(axis=1)
    q = c / n[:, None]
    p = correct_rows(q, confusion) if corrected is None else np.atleast_2d(corrected)
    var = np.clip(corrected_variance(q, n, confusion, row_sizes, p), 0.0, None)
    usable = p > 2.0 * np.sqrt(var)
    bias = 0.5 * np.sum(np.where(usable, var / np.where(usable, p, 1.0), 0.0), axis=1)
    return np.maximum(kl_rows(p) - bias, 0.0)


def resample_tables(tables: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, C, k) multinomial redraws of every condition's counts at its observed shares, in one call."""
    t = np.asarray(tables, dtype=np.int64)
    c, k = t.shape
    # A multinomial as a chain of binomials (group g among what groups < g left), each one vectorised call:
    # far cheaper than numpy's per-draw multinomial for thousands of redraws of few groups.
    out = np.empty((n_resamples, c, k), dtype=np.int64)
    left = np.broadcast_to(t.sum(axis=1), (n_resamples, c)).copy()
    mass = t.sum(axis=1).astype(np.float64)
    for g in range(k - 1):
        share = np.where(mass > 0, t[:, g] / np.where(mass > 0, mass, 1.0), 0.0)
        out[:, :, g] = rng.binomial(left, np.clip(share, 0.0, 1.0))
        left -= out[:, :, g]
        mass = mass - t[:, g]
    out[:, :, k - 1] = left
    return out


def debiased_worst(
    tables: np.ndarray, debias, n_resamples: int, rng: np.random.Generator, draws: np.ndarray | None = None
) -> float:
    """Bootstrap-debiased maximum over conditions of `debias(counts)`; `tables` is (C, k) counts.

    `draws` (from `resample_tables`) lets several estimates share one set of redraws.
    """
    t = np.asarray(tables, dtype=np.int64)
    worst = float(debias(t).max())
    if draws is None:
        draws = resample_tables(t, n_resamples, rng)
    resampled = debias(draws.reshape(-1, t.shape[1])).reshape(draws.shape[0], t.shape[0]).max(axis=1)
    return max(0.0, worst - (float(resampled.mean()) - worst))
