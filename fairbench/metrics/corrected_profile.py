"""Efficient intervals for the judge-corrected metrics: invert the Gaussian profile test of the metric alone.

Why not the metric's range over the corrected shares' region (`regions.score_box`): that region must hold in
k - 1 directions at once, so its shadow on one number is about 3x the estimate's own spread at 5 and 10
groups. As for the observed metrics (`profile`), a test of the metric alone is as narrow as the data allow.

The model. The linear corrected estimate x = (C^T)^-1 q-hat is, to first order, Gaussian around the true
shares p with the delta-method covariance Sigma of `regions.corrected_covariance` (the judged sample's noise
through C^-1 plus each calibration row's noise), evaluated at the estimate. Sigma has rank k - 1 (x sums to
1); in whitened coordinates z of the plane sum = 1 (q = x + B z, B B^T = Sigma) the Mahalanobis distance is
|z|. The test of "f(p) = theta" is the profile statistic
    D(theta) = min { |x - q|^2_Sigma : q in the plane, f(q) = theta },
with the critical value of `profile`: c(r) = the 95% quantile of (chi_{k-1}(r) - r)^2, chi2_{k-1} at theta = 0
(where the hypothesis is the single point U and D(0) = |x - U|^2_Sigma is the Wald statistic of uniformity)
falling to chi2_1 away from U. The level sets of the metrics near U are Euclidean spheres (KL's of radius
sqrt(2 theta / k), fd_l2's theta, fd_l1's cross-polytope holds the sphere theta / sqrt(k)); their radius in
Sigma's metric is taken at Sigma's largest variance, the smallest such radius, so c is never too small.

Computing it. Since the set {q : |x - q|_Sigma <= s} is a ball in z, theta is accepted exactly when theta
lies between the metric's minimum m(s) and maximum M(s) over that ball, at s = sqrt(c(r(theta))). So the
upper end solves theta = M(s(theta)) and the lower one theta = m(s(theta)), each by regula falsi on theta
(one sign change: as theta grows, M(s(theta)) - theta falls and s(theta) shrinks). M is the maximum of a
convex function on a sphere: conditional-gradient ascent (z <- s grad / |grad|, never decreasing a convex
function) from the gradient's direction and every vertex's. m is a convex minimum on a ball: Frank-Wolfe with
a golden-section line search. The metrics are evaluated at the shares clipped to the simplex, so a ball that
leaves it (a group near 0) is handled; the clipped range holds the true one, never the reverse.

A truth on a face of the simplex (a share at 0). The metric of the clipped shares is flat beyond the face and
falls inside it, so near such a truth {f >= theta} is a wedge with the truth at its apex, and a ball of
radius chi_1 misses it too often; the upper end then uses the wedge's own critical value (`_wedge_critical`;
KL, whose slope there is infinite, chi2_{1+j}); the lower end, moving away from the apex, keeps c. Measured
with a calibration set per replicate, 5 groups, one at 0, N = 50,000: fd_l2 covered 92% before, 95% with it.
The linear estimate's bias (inverting an estimated C) and the covariance taken at the estimate were checked at
500 images per group and N = 50,000: the bias is below its standard error and the delta-method sd within 3%
of the simulated one, so neither is corrected; under-coverage measured with one calibration set shared by
many runs was that set's noise.

The test of uniformity is the same test at 0: p = P(chi2_{k-1} > D(0)); the lower end is 0 exactly when
p >= alpha. Every loop runs a fixed number of steps for every row, so a row's interval never depends on the
rows batched with it. Rows whose Sigma is singular in the plane (a judged group never seen and a calibration
with no error into it) cannot be whitened: `fairness` keeps the region's range for those.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.special

from fairbench.metrics.profile import sphere_critical
from fairbench.metrics.regions import corrected_covariance, linear_inverse, simplex_clip

METRICS = ("kl_uniform", "fd_l1", "fd_l2")
# Above this many groups the k + 1 starts of the maximum and the k x k whitening per row are not worth it:
# the region's range (`regions`) is used instead.
MAX_PROFILED_GROUPS = 40
_SINGULAR = 1e-12  # smallest / largest variance in the plane below which a row is not whitened
_ROOT_STEPS = 14
_ASCENT_STEPS = 5
_FW_STEPS = 6
_GOLDEN_STEPS = 8
_KL_FLOOR = 1e-12


@dataclass(frozen=True)
class CorrectedGaussian:
    """Per row: the linear corrected estimate x, the whitening B (R, k, k-1), Sigma's largest variance in the
    plane, the Wald statistic of uniformity |x - U|^2_Sigma and whether the row could be whitened."""

    x: np.ndarray
    basis: np.ndarray
    whiten: np.ndarray  # (R, k-1, k): z = whiten @ (q - x)
    largest: np.ndarray
    statistic: np.ndarray
    ok: np.ndarray

    @property
    def df(self) -> int:
        return self.x.shape[1] - 1

    def p_values(self) -> np.ndarray:
        return scipy.special.chdtrc(self.df, self.statistic)


def helmert(k: int) -> np.ndarray:
    """An orthonormal basis (k, k-1) of the plane sum = 0."""
    h = np.zeros((k, k - 1))
    for j in range(1, k):
        h[:j, j - 1] = 1.0
        h[j, j - 1] = -float(j)
        h[:, j - 1] /= np.sqrt(j * (j + 1.0))
    return h


def gaussian(q_hat: np.ndarray, n: np.ndarray, rates: np.ndarray, row_sizes: np.ndarray,
             weights: np.ndarray) -> CorrectedGaussian:
    """The Gaussian model of the corrected estimate for rows of judged shares `q_hat` from `n` samples."""
    q = np.atleast_2d(np.asarray(q_hat, dtype=np.float64))
    r, k = q.shape
    x = linear_inverse(q, rates)
    sigma = corrected_covariance(q, np.asarray(n, dtype=np.float64), rates, row_sizes, weights)
    h = helmert(k)
    plane = np.einsum("ji,rjl,lm->rim", h, sigma, h)
    plane = 0.5 * (plane + np.swapaxes(plane, 1, 2))
    lam, vec = np.linalg.eigh(plane)
    ok = np.all(np.isfinite(lam), axis=1) & (lam[:, 0] > _SINGULAR * np.maximum(lam[:, -1], 0.0)) & (lam[:, -1] > 0)
    root = np.sqrt(np.where(ok[:, None], lam, 1.0))
    basis = np.einsum("ji,rim->rjm", h, vec * root[:, None, :])  # q - x = basis @ z
    whiten = np.einsum("rim,ji->rmj", vec, h) / root[:, :, None]  # z = whiten @ (q - x)
    z_u = np.einsum("rmj,rj->rm", whiten, 1.0 / k - x)
    statistic = np.where(ok, np.square(z_u).sum(axis=1), np.nan)
    return CorrectedGaussian(x, basis, whiten, np.where(ok, lam[:, -1], np.nan), statistic, ok)


# ------------------------------------------------------------------------------------- the metric on a ball


def _value(metric: str, q: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The metric at the shares clipped to the simplex (fd_l1 smoothed by `delta` for the line search only
    where asked: delta = 0 gives the metric itself)."""
    y = simplex_clip(q)
    k = q.shape[-1]
    if metric == "kl_uniform":
        return np.sum(y * np.log(np.where(y > 0, y * k, 1.0)), axis=-1)
    d = y - 1.0 / k
    if metric == "fd_l2":
        return np.sqrt(np.square(d).sum(axis=-1))
    return np.sum(np.sqrt(d * d + delta[..., None] ** 2) - delta[..., None], axis=-1)


def _gradient(metric: str, q: np.ndarray, delta: np.ndarray, ascending: bool, floor=None) -> np.ndarray:
    """A (sub)gradient of `_value` in q. Shares clipped at 0 count as flat when ascending (pushing them further
    out changes nothing) and as steeply rising from 0 for KL when descending (the way back into the simplex).
    `floor` (..., k): when ascending, KL's slope ln(k p) + 1 is taken at no share below it (a share's own
    standard deviation), so a share near 0 does not turn every step towards its own face."""
    y = simplex_clip(q)
    k = q.shape[-1]
    if metric == "kl_uniform":
        g = np.log(k * np.maximum(y, _KL_FLOOR if floor is None else np.maximum(floor, _KL_FLOOR))) + 1.0
    else:
        d = y - 1.0 / k
        if metric == "fd_l2":
            norm = np.sqrt(np.square(d).sum(axis=-1, keepdims=True))
            g = d / np.where(norm > 0, norm, 1.0)
        else:
            g = d / np.sqrt(d * d + delta[..., None] ** 2)
    if ascending:
        g = np.where(q > 0, g, 0.0)
    return g


def _maximum(metric, model: CorrectedGaussian, s: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """M(s): the metric's maximum over {|z| <= s}, by conditional-gradient ascent from k + 1 directions."""
    x, basis = model.x, model.basis
    r, k = x.shape
    # Starts: the gradient at x, and each vertex's direction (one of them is near a far-away maximum).
    vertex = np.einsum("rmj,gj->rgm", model.whiten, np.eye(k) - 1.0 / k)
    g0 = np.einsum("rjm,rj->rm", basis, _gradient(metric, x, delta, True))
    z = np.concatenate([g0[:, None, :], vertex], axis=1)  # (R, k+1, k-1)
    z = s[:, None, None] * z / np.maximum(np.linalg.norm(z, axis=2, keepdims=True), 1e-300)
    zero = np.zeros(z.shape[:2])
    sd = np.sqrt(np.square(basis).sum(axis=2))[:, None, :]

    def at(zz):
        return _value(metric, x[:, None, :] + np.einsum("rjm,rsm->rsj", basis, zz), zero)

    current = at(z)
    golden = (np.sqrt(5.0) - 1.0) / 2.0
    for _ in range(_ASCENT_STEPS):
        q = x[:, None, :] + np.einsum("rjm,rsm->rsj", basis, z)
        g = np.einsum("rjm,rsj->rsm", basis, _gradient(metric, q, zero, True, sd))
        norm = np.linalg.norm(g, axis=2, keepdims=True)
        v = np.where(norm > 0, s[:, None, None] * g / np.where(norm > 0, norm, 1.0), z)
        # The full step (the sphere point the linearisation prefers) and, because clipping at the simplex makes
        # the metric flat beyond a face, the best point on the way to it: the larger, if it improves.
        d = v - z
        a, b = np.zeros(zero.shape), np.ones(zero.shape)
        for _ in range(_GOLDEN_STEPS):
            c1, c2 = b - golden * (b - a), a + golden * (b - a)
            higher = at(z + c1[..., None] * d) >= at(z + c2[..., None] * d)
            a, b = np.where(higher, a, c1), np.where(higher, c2, b)
        mid = z + (0.5 * (a + b))[..., None] * d
        f_full, f_mid = at(v), at(mid)
        step = np.where((f_full >= f_mid)[..., None], v, mid)
        f_step = np.maximum(f_full, f_mid)
        better = f_step > current
        z = np.where(better[..., None], step, z)
        current = np.where(better, f_step, current)
    return current.max(axis=1)


def _minimum(metric, model: CorrectedGaussian, s: np.ndarray, delta: np.ndarray, z: np.ndarray):
    """m(s): the metric's minimum over {|z| <= s} by Frank-Wolfe from `z` (kept inside the ball); (m, z)."""
    x, basis = model.x, model.basis
    norm = np.linalg.norm(z, axis=1)
    z = np.where((norm > s)[:, None], z * (s / np.maximum(norm, 1e-300))[:, None], z)
    golden = (np.sqrt(5.0) - 1.0) / 2.0

    def at(zz):
        return _value(metric, x + np.einsum("rjm,rm->rj", basis, zz), delta)

    for _ in range(_FW_STEPS):
        g = np.einsum("rjm,rj->rm", basis, _gradient(metric, x + np.einsum("rjm,rm->rj", basis, z), delta, False))
        gn = np.linalg.norm(g, axis=1)
        v = -s[:, None] * g / np.where(gn > 0, gn, 1.0)[:, None]
        d = v - z
        a, b = np.zeros(len(s)), np.ones(len(s))
        for _ in range(_GOLDEN_STEPS):  # golden section for the step on the segment z -> v
            c1, c2 = b - golden * (b - a), a + golden * (b - a)
            lower = at(z + c1[:, None] * d) <= at(z + c2[:, None] * d)
            a, b = np.where(lower, a, c1), np.where(lower, c2, b)
        step = 0.5 * (a + b)
        better = at(z + step[:, None] * d) < at(z)
        z = np.where(better[:, None], z + step[:, None] * d, z)
    q = x + np.einsum("rjm,rm->rj", basis, z)
    return _value(metric, q, np.zeros(len(s))), z


# ----------------------------------------------------------------------------------------------- intervals


def radius(metric: str, theta: np.ndarray, k: int, largest: np.ndarray) -> np.ndarray:
    """The level set {f = theta}'s smallest radius near U in the metric of Sigma (module docstring)."""
    theta = np.maximum(theta, 0.0)
    if metric == "kl_uniform":
        rho = np.sqrt(2.0 * theta / k)
    elif metric == "fd_l2":
        rho = theta
    else:
        rho = theta / np.sqrt(k)
    return rho / np.sqrt(largest)


def interval(model: CorrectedGaussian, metric: str, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the 1 - alpha interval of `metric` for the rows of `model` that could be whitened
    (NaN for the others)."""
    with np.errstate(all="ignore"):
        return _interval(model, metric, alpha)


def _interval(model: CorrectedGaussian, metric: str, alpha: float):
    r, k = model.x.shape
    ok = model.ok
    lower, upper = np.full(r, np.nan), np.full(r, np.nan)
    if not ok.any():
        return lower, upper
    idx = np.flatnonzero(ok)
    sub = CorrectedGaussian(model.x[idx], model.basis[idx], model.whiten[idx], model.largest[idx],
                            model.statistic[idx], ok[idx])
    n_rows = idx.size
    # fd_l1's kinks are smoothed for Frank-Wolfe's steps at a scale far below the estimate's spread.
    delta = 1e-4 * np.sqrt(sub.largest)

    floor = np.zeros(n_rows)
    if metric == "kl_uniform":
        # KL's slope is infinite at a face of the simplex (a share at 0), so its level sets bend there and a
        # truth on a face is missed by the one-direction calibration (measured: 89% at 5 groups, a group at
        # 0). Each share the widest ball reaches 0 with adds its own direction: the upper end's c is at least
        # chi2_{1 + j}.
        sd = np.sqrt(np.square(sub.basis).sum(axis=2))
        reach = np.sqrt(scipy.special.chdtri(k - 1, alpha))
        faces = np.minimum(1 + np.count_nonzero(sub.x - reach * sd <= 0, axis=1), k - 1)
        floor = scipy.special.chdtri(faces, alpha)

    # The faces' critical values hold the upper end only: the lower one moves away from the apex, where the
    # wedge's extra tail is not (measured at 5 groups, one at 0: the lower end missed 0.2-1.5%, under alpha / 2).
    upper_floor = floor
    if metric != "kl_uniform" and k > 2:
        upper_floor = np.maximum(floor, _wedge_critical(metric, sub, delta, alpha))
    floor = np.zeros(n_rows)

    def s_of(theta, at_least=floor):
        return np.sqrt(np.maximum(sphere_critical(radius(metric, theta, k, sub.largest), k - 1, alpha), at_least))

    theta_hat = _value(metric, sub.x, np.zeros(n_rows))
    # M at the widest ball: above the upper end.
    top = _maximum(metric, sub, s_of(np.zeros(n_rows), upper_floor), delta)
    # Upper end: phi(theta) = M(s(theta)) - theta falls from >= 0 at theta-hat to <= 0 at `top`.
    upper_end = _falsi(lambda th: _maximum(metric, sub, s_of(th, upper_floor), delta) - th, theta_hat, top, fa=None)

    rejects = sub.p_values() < alpha
    low = np.zeros(n_rows)
    if rejects.any():
        z0 = np.zeros((n_rows, k - 1))
        state = {"z": z0}

        def phi(th):
            m, z = _minimum(metric, sub, s_of(th), delta, state["z"])
            state["z"] = z
            return m - th

        # phi(0) = m(sqrt(chi2_{k-1})) > 0 where the test rejects; phi(theta-hat) <= 0.
        found = _falsi(phi, np.zeros(n_rows), theta_hat, fa=None, rising=True)
        low = np.where(rejects, np.clip(found, np.nextafter(0.0, 1.0), None), 0.0)
    lower[idx], upper[idx] = low, np.maximum(upper_end, low)
    return lower, upper


def _wedge_critical(metric: str, model: CorrectedGaussian, delta: np.ndarray, alpha: float) -> np.ndarray:
    """The upper end's critical value where a truth on a face of the simplex is within reach (fd_l1, fd_l2).

    There the metric of the clipped shares is flat beyond the face and falls inside it: locally the minimum of
    two linear functions, so {f >= theta} is a wedge whose apex is the truth, and the ball of radius s misses
    it with probability Q(s) + psi / (2 pi) exp(-s^2 / 2) (the two half-planes' tails plus the apex's normal
    cone), psi the angle between the two sides' whitened gradients; chi2_1's s = 1.96 misses 3.7% instead of
    2.5% at psi = pi / 2. s solves Q(s) + psi / (2 pi) exp(-s^2 / 2) = alpha / 2, the faces' angles summed
    (a union bound) up to pi; each angle is taken at the estimate moved onto that face."""
    x, basis = model.x, model.basis
    r, k = x.shape
    sd = np.sqrt(np.square(basis).sum(axis=2))
    near = x - np.sqrt(scipy.special.chdtri(k - 1, alpha)) * sd <= 0
    psi = np.zeros(r)
    base = simplex_clip(x)
    for i in np.flatnonzero(near.any(axis=0)):
        y = base.copy()
        y[:, i] = 0.0
        total = y.sum(axis=1, keepdims=True)
        y = np.where(total > 0, y / np.where(total > 0, total, 1.0), 1.0 / k)
        inside = _gradient(metric, y, delta, False)
        outside = inside.copy()
        outside[:, i] = np.sum(y * inside, axis=1)  # beyond the face: the others renormalised, share i flat
        a = np.einsum("rjm,rj->rm", basis, inside)
        b = np.einsum("rjm,rj->rm", basis, outside)
        cos = np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-300)
        psi += np.where(near[:, i], np.arccos(np.clip(cos, -1.0, 1.0)), 0.0)
    psi = np.minimum(psi, np.pi)
    lo = np.full(r, scipy.special.ndtri(1 - alpha / 2))
    hi = lo + 2.0
    for _ in range(40):  # bisection: the miss probability falls in s
        mid = 0.5 * (lo + hi)
        miss = scipy.special.ndtr(-mid) + psi / (2 * np.pi) * np.exp(-0.5 * mid * mid)
        lo, hi = np.where(miss > alpha / 2, mid, lo), np.where(miss > alpha / 2, hi, mid)
    return np.square(hi)


def _falsi(phi, a, b, fa=None, rising=False):
    """The root of phi on [a, b] per row (phi(a) >= 0 >= phi(b); `rising`: the reverse order, phi(a) > 0 at the
    lower end of the bracket and phi(b) <= 0 at the upper). Illinois regula falsi, a fixed number of steps.
    Returns, for the upper end, the largest theta known accepted (phi >= 0); for the lower one the smallest."""
    fa = phi(a) if fa is None else fa
    fb = phi(b)
    # Accepted: phi(theta) >= 0 on the upper side (theta <= M), phi(theta) <= 0 on the lower side (m <= theta).
    best = a.copy() if not rising else b.copy()
    fa = np.where(np.isfinite(fa), fa, 0.0)
    fb = np.where(np.isfinite(fb), fb, 0.0)
    if not rising:
        best = np.where(fb >= 0, b, best)
    else:
        best = np.where(fa <= 0, a, best)
    for _ in range(_ROOT_STEPS):
        span = fb - fa
        c = np.where(span != 0, b - fb * (b - a) / np.where(span != 0, span, 1.0), 0.5 * (a + b))
        c = np.clip(np.where(np.isfinite(c), c, 0.5 * (a + b)), np.minimum(a, b), np.maximum(a, b))
        fc = phi(c)
        fc = np.where(np.isfinite(fc), fc, 0.0)
        same_as_a = (fc > 0) == (fa > 0)
        a, fa, b, fb = (np.where(same_as_a, c, a), np.where(same_as_a, fc, fa * 0.5),
                        np.where(same_as_a, b, c), np.where(same_as_a, fb * 0.5, fc))
        if not rising:
            best = np.where(fc >= 0, np.maximum(best, c), best)
        else:
            best = np.where(fc <= 0, np.minimum(best, c), best)
    return best
