"""An independent computation of the profile intervals, for the tests: brute force on a grid of the simplex,
the calibration from the normal and noncentral chi-square distributions by scipy's own root finder.

Nothing here is shared with `fairbench.metrics.profile`: the deviance is minimised over grid points, not
along a multiplier path, and c(r) is solved with brentq on scipy.stats.ncx2, not a bisection table."""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats


def sphere_critical(r: float, df: int, alpha: float = 0.05) -> float:
    """The c with P((sqrt(X) - r)^2 <= c) = 1 - alpha for X ~ noncentral chi-square(df, r^2)."""
    def inside(c: float) -> float:
        root = math.sqrt(c)
        if r == 0:
            return stats.chi2.cdf(c, df) - (1 - alpha)
        hi = stats.ncx2.cdf((r + root) ** 2, df, r * r)
        lo = stats.ncx2.cdf(max(r - root, 0.0) ** 2, df, r * r)
        return hi - lo - (1 - alpha)
    return optimize.brentq(inside, 1e-9, 100.0, xtol=1e-12)


def radius(metric: str, theta: float, n: int, k: int) -> float:
    if metric == "kl_uniform":
        return math.sqrt(2 * n * max(theta, 0.0))
    if metric == "fd_l2":
        return math.sqrt(n * k) * theta
    return math.sqrt(n) * theta


def metric_of(metric: str, p: np.ndarray) -> np.ndarray:
    k = p.shape[1]
    if metric == "kl_uniform":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(p > 0, p * np.log(p * k), 0.0).sum(axis=1)
    if metric == "fd_l2":
        return np.sqrt(((p - 1 / k) ** 2).sum(axis=1))
    return np.abs(p - 1 / k).sum(axis=1)


def deviance(counts: np.ndarray, p: np.ndarray) -> np.ndarray:
    n = counts.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(counts > 0, counts * np.log(counts / (n * p)), 0.0)
    return 2 * terms.sum(axis=1)


def grid_interval(counts, metric: str, points: np.ndarray, alpha: float = 0.05, scale: float = 1.0):
    """{f(p) : D(p) <= scale * c(r(f(p)))} over the grid `points` (rows on the simplex): its min and max.

    D(p) <= c(f(p)) at some grid point with f(p) = theta is the same as the profile min_{f = theta} D <= c,
    up to the grid's resolution, which the caller's tolerance absorbs."""
    counts = np.asarray(counts, dtype=np.float64)
    n, k = int(counts.sum()), len(counts)
    d = deviance(counts, points)
    theta = metric_of(metric, points)
    # c(r) on a fine table of r, interpolated (brentq per grid point would take minutes).
    r = np.array([radius(metric, t, n, k) for t in theta])
    table_r = np.linspace(0, min(r.max(), 60.0) + 1e-9, 400)
    table_c = np.array([sphere_critical(x, k - 1, alpha) for x in table_r])
    c = scale * np.interp(np.minimum(r, 60.0), table_r, table_c)
    accepted = theta[d <= c]
    return float(accepted.min()), float(accepted.max())


def simplex_grid(k: int, step: float) -> np.ndarray:
    if k == 2:
        t = np.arange(0.0, 1.0 + step / 2, step)
        return np.stack([1 - t, t], axis=1)
    a, b = np.meshgrid(np.arange(0, 1 + step / 2, step), np.arange(0, 1 + step / 2, step), indexing="ij")
    grid = np.stack([a.ravel(), b.ravel(), 1 - a.ravel() - b.ravel()], axis=1)
    return grid[grid[:, 2] >= -1e-12].clip(0.0, 1.0)


def midp_scale(n: int, alpha: float = 0.05) -> float:
    """The two-group test's critical G (between the last rejected and first accepted count) over chi2(1)'s."""
    low = np.arange(n // 2 + 1)
    far = 2 * stats.binom.cdf(low - 1, n, 0.5) + stats.binom.pmf(low, n, 0.5)
    far[low * 2 == n] = 1 - 0.5 * stats.binom.pmf(n // 2, n, 0.5)
    last = np.flatnonzero(far < alpha)[-1]
    g = [deviance(np.array([x, n - x], float), np.array([[0.5, 0.5]]))[0] for x in (last, last + 1)]
    return 0.5 * (g[0] + g[1]) / stats.chi2.ppf(1 - alpha, 1)
