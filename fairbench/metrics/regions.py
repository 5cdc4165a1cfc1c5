"""Confidence regions for group proportions, and a metric's interval as its range over a region.

Used for the group shares, the judge-corrected metrics and the mean and worst case over conditions; the
observed metrics' own intervals are narrower profile-likelihood intervals (`profile`).

Why not the bootstrap. Every fairness metric has a kink at the uniform point U, and the per-condition
worst case is a maximum: there the percentile bootstrap fails (a fair generator's resampled KL values all
lie above the truth 0, so no percentile interval can contain it). Instead fairbench builds a region that
holds the true proportions p with probability at least 95%, and reports as a metric's interval its minimum
and maximum over that region. Whenever p is in the region, every metric of p is inside its interval, so
each interval covers at least as often as the region does, kink or not; the lower end is exactly 0
whenever U is in the region.

The region is a box intersected with the probability simplex, {L <= p <= U, sum(p) = 1}:

- Observed proportions: each group's exact Clopper-Pearson interval at level 1 - alpha/k (Bonferroni over
  the k groups; for k = 2 one interval at 1 - alpha, since p_0 = 1 - p_1). Exact binomial intervals hold
  for every N and every p, zero counts included, so the box covers with probability >= 1 - alpha by
  construction, not only asymptotically. A box is also cheap to project on (below), and its per-group
  Bonferroni cost is small: at k = 10 each group's interval is at z = 2.8, where a chi-square ellipsoid's
  shadow on one coordinate would be at z = 4.1.
- Judge-corrected proportions: p = A q with A = (C^T)^{-1}, q the judged distribution and C the confusion
  estimated from m_i held-out images of group i. Both q-hat and C-hat are random, so the covariance of
  the linear estimate A-hat q-hat is, to first order (delta method; rows of C-hat independent multinomials),
      A [ (diag q - q q^T) / N  +  sum_i p_i^2 (diag C_i - C_i C_i^T) / m_i ] A^T,
  and each group's interval is the estimate +- z sd at the same per-group level. This is asymptotic; the
  simulation tests show its coverage over calibration sets of 200 to 5,000 images per group. A judge with
  no errors on its held-out set (C-hat = I) makes the corrected proportions the observed ones, and then the
  exact box is used.

Range of a metric over the region. The four metrics are symmetric and convex in p, hence Schur-convex:
- minimum: the "water-filling" point p_g = clip(t, L_g, U_g), with t chosen so that sum(p) = 1, is
  majorised by every other point of the region, so it minimises all four at once;
- maximum: a convex function on a polytope peaks at a vertex, and a vertex of the region has every
  coordinate but one at a bound, so for k <= 12 all k 2^(k-1) candidates are enumerated. Beyond that an
  upper bound is used: the point whose sorted partial sums are the largest any point of the region can
  have majorises the whole region, so the metric there is at least the maximum (conservative, never low).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product

import numpy as np
import scipy.special

# Above this many groups the exact vertex enumeration (k 2^(k-1) points) gives way to the majorising bound.
MAX_ENUMERATED_GROUPS = 12
# Rows of vertex candidates evaluated at once: bounds memory at about 50 MB for k = 12.
_VERTEX_CHUNK = 200_000
_FEASIBLE_ATOL = 1e-12


@dataclass(frozen=True)
class ProportionBox:
    """Rows of simultaneous bounds, shape (R, k): every row's true p lies in [lower, upper] with prob >= level."""

    lower: np.ndarray
    upper: np.ndarray
    level: float


def per_group_alpha(alpha: float, k: int) -> float:
    """Bonferroni over groups; two groups need one interval, since p_0 = 1 - p_1 is then bounded too."""
    return alpha if k == 2 else alpha / k


def clopper_pearson_box(counts: np.ndarray, alpha: float) -> ProportionBox:
    """Exact simultaneous box for multinomial proportions from counts of shape (R, k) (or (k,))."""
    c = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    n = c.sum(axis=1, keepdims=True)
    a = per_group_alpha(alpha, c.shape[1])
    with np.errstate(invalid="ignore"):
        # The Beta quantiles through scipy.special directly: scipy.stats' wrapper costs more than the work.
        lower = np.where(c > 0, scipy.special.betaincinv(c, n - c + 1, a / 2), 0.0)
        upper = np.where(c < n, scipy.special.betaincinv(c + 1, n - c, 1 - a / 2), 1.0)
    return ProportionBox(np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0), 1.0 - alpha)


def linear_inverse(q_hat: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """The unconstrained corrected estimate A q-hat, rows (R, k); sums to 1 but may leave the simplex."""
    c = np.asarray(confusion, dtype=np.float64)
    q = np.atleast_2d(q_hat)
    # Inverses applied with einsum, row by row: a row's result never depends on the rows batched with it.
    if c.ndim == 2:
        return np.einsum("ij,rj->ri", np.linalg.inv(c.T), q)
    return np.einsum("rij,rj->ri", np.linalg.inv(np.swapaxes(c, -1, -2)), q)


def corrected_covariance(
    q_hat: np.ndarray, n: np.ndarray, confusion: np.ndarray, row_sizes: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Delta-method covariance (R, k, k) of the linear corrected estimate; see the module docstring.

    `q_hat` (R, k) judged proportions from `n` (R,) samples; `confusion` (k, k) or (R, k, k) estimated from
    `row_sizes` (k,) or (R, k) held-out images per true group; `weights` (R, k): the p_i of the formula
    (a simplex point: the clipped estimate).
    """
    q = np.atleast_2d(q_hat)
    r, k = q.shape
    conf = np.asarray(confusion, dtype=np.float64)
    c = np.broadcast_to(conf, (r, k, k))
    m = np.broadcast_to(np.asarray(row_sizes, dtype=np.float64), (r, k))
    # A = (C^T)^{-1}; one shared confusion is inverted once, not once per row (the bootstrap has thousands).
    a = np.linalg.inv(conf.T) if conf.ndim == 2 else np.linalg.inv(np.swapaxes(c, -1, -2))
    sigma_q = _multinomial_cov(q) / np.asarray(n, dtype=np.float64).reshape(r, 1, 1)
    # sum_i p_i^2 Cov(C_i-hat) with Cov = (diag C_i - C_i C_i^T) / m_i.
    scale = np.square(weights) / np.maximum(m, 1.0)  # (R, k)
    if conf.ndim == 2:  # one confusion for every row: its k outer products C_i C_i^T are formed once
        diag_part = np.einsum("ri,ij->rj", scale, conf)
        outer_part = np.einsum("ri,ijl->rjl", scale, conf[:, :, None] * conf[:, None, :])
    else:
        diag_part = np.einsum("ri,rij->rj", scale, c)
        outer_part = np.einsum("ri,rij,ril->rjl", scale, c, c)
    sigma_c = _diag(diag_part) - outer_part
    return a @ (sigma_q + sigma_c) @ np.swapaxes(a, -1, -2)


def corrected_variance(
    q_hat: np.ndarray, n: np.ndarray, confusion: np.ndarray, row_sizes: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """The diagonal (R, k) of `corrected_covariance`, without forming the k x k matrices.

    With A = (C^T)^{-1} and S = Sigma_q + Sigma_C, Var_g = sum_jl A_gj S_jl A_gl. The rank-one parts reduce
    in closed form: (A q)_g^2 / N for the judged sample, and sum_i s_i (A C_i)_g^2 = s_g for the calibration,
    since A C^T = I. What remains is A∘A applied to q / N + sum_i s_i C_i.
    """
    q = np.atleast_2d(q_hat)
    r, k = q.shape
    conf = np.asarray(confusion, dtype=np.float64)
    n_rows = np.asarray(n, dtype=np.float64).reshape(r, 1)
    scale = np.square(weights) / np.maximum(np.broadcast_to(np.asarray(row_sizes, dtype=np.float64), (r, k)), 1.0)
    if conf.ndim == 2:
        a = np.linalg.inv(conf.T)
        spread = q / n_rows + np.einsum("ri,ij->rj", scale, conf)
        return np.einsum("rj,gj->rg", spread, a * a) - np.square(np.einsum("gj,rj->rg", a, q)) / n_rows - scale
    a = np.linalg.inv(np.swapaxes(conf, -1, -2))
    spread = q / n_rows + np.einsum("ri,rij->rj", scale, conf)
    return np.einsum("rj,rgj->rg", spread, a * a) - np.square(np.einsum("rgj,rj->rg", a, q)) / n_rows - scale


def _multinomial_cov(p: np.ndarray) -> np.ndarray:
    return _diag(p) - p[:, :, None] * p[:, None, :]


def _diag(v: np.ndarray) -> np.ndarray:
    out = np.zeros(v.shape + (v.shape[-1],))
    idx = np.arange(v.shape[-1])
    out[..., idx, idx] = v
    return out


def score_box(
    q_hat: np.ndarray, n: np.ndarray, confusion: np.ndarray, row_sizes: np.ndarray, alpha: float | np.ndarray
) -> ProportionBox:
    """Score-type (Wilson-like) simultaneous box for the corrected proportions, rows (R, k).

    A Wald interval (estimate +- z sd, the sd taken at the estimate) is too short exactly where it matters:
    a low estimate has a small estimated variance and so misses a larger truth (measured here: 91.7% at
    10 groups and N = 500). As in Wilson's interval, group g's interval is instead every value t whose
    own variance allows the estimate: (c_g - t)^2 <= z^2 V_g(t), with V_g(t) the delta-method variance at
    the point that puts t on group g and shares the rest as the estimate does. That point is linear in t,
    so V_g is exactly quadratic and the interval comes from one quadratic equation, no iteration. With a
    perfect judge it is Wilson's interval.
    """
    q = np.atleast_2d(q_hat)
    r, k = q.shape
    conf = np.asarray(confusion, dtype=np.float64)
    c = np.broadcast_to(conf, (r, k, k))
    center = linear_inverse(q, c)
    base = simplex_clip(center)
    # alpha may differ per row (the corrected test bisects each row's own alpha): z2 is then (R,).
    z2 = np.broadcast_to(scipy.special.ndtri(1 - per_group_alpha(np.asarray(alpha, dtype=np.float64), k) / 2) ** 2, (r,))
    # V_g at t = 0, 1/2, 1 for every group at once: points[t, g, row] puts t on group g and shares 1 - t
    # over the others as the estimate does (evenly when the estimate has no mass there).
    eye = np.eye(k)
    rest = np.where(eye[:, None, :] > 0, 0.0, base[None])  # (k, R, k): the estimate without group g
    mass = rest.sum(axis=2, keepdims=True)
    rest = np.where(mass > 0, rest / np.where(mass > 0, mass, 1.0), ((1.0 - eye) / (k - 1))[:, None, :])
    ts = np.array([0.0, 0.5, 1.0])
    points = (1.0 - ts)[:, None, None, None] * rest[None] + ts[:, None, None, None] * eye[None, :, None, :]
    flat = points.reshape(-1, k)  # (3 k R, k), row-major over (t, g, row)
    sizes = np.tile(np.broadcast_to(row_sizes, (r, k)), (3 * k, 1))
    if conf.ndim == 2:
        judged = np.einsum("ri,ij->rj", flat, conf)
    else:
        conf = np.tile(c, (3 * k, 1, 1))
        judged = np.einsum("ri,rij->rj", flat, conf)
    var = corrected_variance(judged, np.tile(n, 3 * k), conf, sizes, flat)
    groups = np.arange(k)
    v_all = var.reshape(3, k, r, k)[:, groups, :, groups]  # (k, 3, R): V_g(t) of group g
    lower, upper = np.empty((r, k)), np.empty((r, k))
    for g in range(k):
        v = v_all[g]
        # V(t) = a0 + a1 t + a2 t^2 through the three evaluations.
        a0 = v[0]
        a2 = 2.0 * (v[2] - 2.0 * v[1] + v[0])
        a1 = v[2] - v[0] - a2
        cg = center[:, g]
        qa = 1.0 - z2 * a2
        qb = -(2.0 * cg + z2 * a1)
        qc = cg * cg - z2 * a0
        disc = qb * qb - 4.0 * qa * qc
        ok = (qa > 0) & (disc >= 0)
        root = np.sqrt(np.where(ok, disc, 0.0))
        safe = np.where(ok, qa, 1.0)
        lower[:, g] = np.where(ok, (-qb - root) / (2.0 * safe), 0.0)
        upper[:, g] = np.where(ok, (-qb + root) / (2.0 * safe), 1.0)
        # No t satisfies the inequality only when the estimate is far outside [0, 1]: the data contradict the
        # calibration there (the judge errs on these images unlike on real ones). A zero-width interval at the
        # nearest end would claim certainty; instead the group gets every value within z standard deviations
        # of that end, its variance taken at the end itself.
        # Likewise when every such t lies outside [0, 1] (the clipping below would leave [0, 0] or [1, 1]).
        none = (qa > 0) & (disc < 0)
        below = (none & (cg < 0.5)) | (ok & (upper[:, g] < 0.0))
        above = (none & (cg >= 0.5)) | (ok & (lower[:, g] > 1.0))
        lower[below, g] = 0.0
        upper[below, g] = np.sqrt(z2[below] * np.clip(a0[below], 0.0, None))
        lower[above, g] = 1.0 - np.sqrt(z2[above] * np.clip((a0 + a1 + a2)[above], 0.0, None))
        upper[above, g] = 1.0
    lower, upper = np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)
    # A region that misses the simplex (sum of lower bounds above 1, or of upper bounds below 1) means the
    # data contradict the calibration; widen it just enough to hold the clipped estimate.
    bad = (lower.sum(axis=1) > 1.0) | (upper.sum(axis=1) < 1.0)
    if np.any(bad):
        lower[bad] = np.minimum(lower[bad], base[bad])
        upper[bad] = np.maximum(upper[bad], base[bad])
    return ProportionBox(lower, upper, 1.0 - float(np.max(alpha)))


def simplex_clip(x: np.ndarray) -> np.ndarray:
    """Negative parts set to 0, then renormalised: a cheap simplex point near an estimate that sums to 1."""
    y = np.clip(x, 0.0, None)
    total = y.sum(axis=-1, keepdims=True)
    return np.where(total > 0, y / np.where(total > 0, total, 1.0), 1.0 / x.shape[-1])


# ----------------------------------------------------------------------------------- range over a box


RowMetric = Callable[[np.ndarray], np.ndarray]


def most_uniform_point(box: ProportionBox) -> np.ndarray:
    """Rows p_g = clip(t, L_g, U_g) summing to 1: the region's point majorised by all others.

    f(t) = sum_g clip(t, L_g, U_g) is piecewise linear and non-decreasing with its kinks at the bounds, so t
    is found exactly: evaluate f at every bound, take the first kink where f reaches 1, interpolate linearly
    from the kink before it.
    """
    lo, hi = box.lower, box.upper
    r, k = lo.shape
    knots = np.sort(np.concatenate([lo, hi], axis=1), axis=1)  # (R, 2k)
    f = np.clip(knots[:, :, None], lo[:, None, :], hi[:, None, :]).sum(axis=2)  # f at every kink
    # First kink with f >= 1 (the last one when rounding leaves every f below 1).
    j = np.minimum(np.argmax(f >= 1.0, axis=1) + np.all(f < 1.0, axis=1) * (2 * k - 1), 2 * k - 1)
    rows = np.arange(r)
    prev = np.maximum(j - 1, 0)
    f0, f1 = f[rows, prev], f[rows, j]
    t0, t1 = knots[rows, prev], knots[rows, j]
    rise = f1 - f0
    frac = np.where(rise > 0, (1.0 - f0) / np.where(rise > 0, rise, 1.0), 1.0)
    t = t0 + np.clip(frac, 0.0, 1.0) * (t1 - t0)
    p = np.clip(t[:, None], lo, hi)
    return p / p.sum(axis=1, keepdims=True)


def metric_ranges(box: ProportionBox, metrics: dict[str, RowMetric]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{name: (min over the region, max over the region)}, each of shape (R,)."""
    p_min = most_uniform_point(box)
    k = box.lower.shape[1]
    if k <= MAX_ENUMERATED_GROUPS:
        highs = _vertex_maxima(box, metrics)
    else:
        p_env = majorising_point(box)
        highs = {name: fn(p_env) for name, fn in metrics.items()}
    return {name: (fn(p_min), np.maximum(highs[name], fn(p_min))) for name, fn in metrics.items()}


@functools.lru_cache(maxsize=None)
def _vertex_patterns(k: int) -> tuple[np.ndarray, np.ndarray]:
    """The at-upper-bound patterns (P, k-1) over the k-1 bounded groups, and for each free group j the
    indices (k, k-1) of the groups that are bounded."""
    patterns = np.array(list(product((False, True), repeat=k - 1)), dtype=bool)
    others = np.array([[g for g in range(k) if g != j] for j in range(k)], dtype=np.int64)
    return patterns, others


def _vertex_maxima(box: ProportionBox, metrics: dict[str, RowMetric]) -> dict[str, np.ndarray]:
    """Exact maxima by enumerating the vertices {all coordinates but one at a bound} of every row's region.

    The metrics are symmetric in the groups (the water-filling minimum relies on it too), so a vertex is
    evaluated as [its k-1 bounded coordinates, its free one], without putting the groups back in order.
    """
    lo, hi = box.lower, box.upper
    r, k = lo.shape
    patterns, others = _vertex_patterns(k)  # patterns: True = at the upper bound
    n_vertices = k * patterns.shape[0]
    best = {name: np.full(r, -np.inf) for name in metrics}
    rows_per_chunk = max(1, _VERTEX_CHUNK // (n_vertices * k))
    for start in range(0, r, rows_per_chunk):
        sl = slice(start, min(r, start + rows_per_chunk))
        l, u = lo[sl], hi[sl]
        n = l.shape[0]
        # Every free group j at once: (n, k, P, k-1) bounded coordinates and (n, k, P) the free one.
        fixed = np.where(patterns[None, None], u[:, others][:, :, None, :], l[:, others][:, :, None, :])
        free = 1.0 - fixed.sum(axis=3)
        feasible = (free >= l[:, :, None] - _FEASIBLE_ATOL) & (free <= u[:, :, None] + _FEASIBLE_ATOL)
        vertices = np.concatenate([fixed, np.clip(free, 0.0, 1.0)[..., None]], axis=3).reshape(-1, k)
        feasible = feasible.reshape(n, n_vertices)
        for name, fn in metrics.items():
            best[name][sl] = np.where(feasible, fn(vertices).reshape(n, n_vertices), -np.inf).max(axis=1)
    return best


def majorising_point(box: ProportionBox) -> np.ndarray:
    """A sorted point whose partial sums bound those of every point of the region (so it majorises them).

    The largest sum of j coordinates is at most min(sum of the j largest U, 1 - sum L + sum of the j largest
    L) and at most 1; the least concave majorant of those bounds gives a non-increasing point summing to 1.
    """
    lo, hi = box.lower, box.upper
    r, k = lo.shape
    top_u = np.cumsum(-np.sort(-hi, axis=1), axis=1)
    top_l = np.cumsum(-np.sort(-lo, axis=1), axis=1)
    bound = np.minimum(np.minimum(top_u, 1.0 - lo.sum(axis=1, keepdims=True) + top_l), 1.0)
    bound[:, -1] = 1.0
    sums = np.concatenate([np.zeros((r, 1)), bound], axis=1)  # S_0 .. S_k
    out = np.empty((r, k))
    for row in range(r):
        hull = _upper_concave_hull(sums[row])
        out[row] = np.diff(hull)
    return np.clip(out, 0.0, 1.0)


def _upper_concave_hull(values: np.ndarray) -> np.ndarray:
    """Least concave majorant of the points (j, values[j]), evaluated at every j."""
    pts: list[int] = []
    for j in range(values.size):
        while len(pts) >= 2:
            a, b = pts[-2], pts[-1]
            # drop b if it lies on or below the chord from a to j
            if (values[b] - values[a]) * (j - a) <= (values[j] - values[a]) * (b - a):
                pts.pop()
            else:
                break
        pts.append(j)
    return np.interp(np.arange(values.size), pts, values[pts])


__all__ = [
    "MAX_ENUMERATED_GROUPS",
    "ProportionBox",
    "clopper_pearson_box",
    "corrected_covariance",
    "corrected_variance",
    "linear_inverse",
    "majorising_point",
    "metric_ranges",
    "most_uniform_point",
    "score_box",
    "per_group_alpha",
    "simplex_clip",
]
