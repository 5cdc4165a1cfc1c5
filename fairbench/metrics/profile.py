"""Efficient intervals for one fairness metric: invert the profile likelihood of the metric itself.

Why not the range of the metric over a confidence region for all k proportions (`regions`): that region
must hold in k - 1 directions at once, and its shadow on one number is up to 3x wider than the metric's own
sampling spread at 5 or 10 groups. A test of the metric alone is as narrow as the data allow.

The test of "metric = theta". For counts n ~ Multinomial(N, p) the profile deviance
    D(theta) = 2 min { sum_i n_i ln(p-hat_i / p_i) : p in the simplex, f(p) = theta }
is the likelihood-ratio statistic of that hypothesis. Far from uniform it is chi-square with 1 degree of
freedom (Wilks). At theta = 0 the hypothesis is the single point U and D(0) is the G statistic of
uniformity, chi-square with k - 1 degrees of freedom. In between, near U, the metric's level sets are
spheres of Fisher radius r around U (KL(p || U) ~ r^2 / 2N, fd_l2 ~ r / sqrt(Nk); fd_l1's cross-polytope is
inscribed in the sphere r = sqrt(N) fd_l1, which is used), so D is the squared distance of a Gaussian vector
with mean at distance r from the origin to that sphere: D ~ (chi_{k-1}(r) - r)^2, a noncentral chi. Its
95% quantile c(r) falls from chi2_{k-1} at r = 0 to chi2_1 as r grows; this is the boundary-aware
calibration. The interval is {theta : D(theta) <= c(r(theta))}, and the test of uniformity is the same
test at theta = 0: the interval excludes 0 exactly when its p-value is below 0.05.

Computing D. The minimiser is a stationary point of sum_i -n_i ln p_i + mu f(p) + nu sum_i p_i, which is
separable in p: for each multiplier mu every p_i solves a one-dimensional equation (closed form for fd_l1
and fd_l2, a few Newton steps for KL) and nu is fixed by sum p = 1 (safeguarded Newton). Below the estimate
mu > 0 walks from p-hat towards U; the crossing D = c is bracketed on a grid of mu and bisected (fd_l1's
path jumps where a share sits on a kink, and the crossing is then bisected on the segment between the two
sides). Above it, KL and fd_l2 need the largest group's share past the point where its one-dimensional
problem stops being convex, so that path is parametrised by that share instead (`_upper_by_leader`).
Rows are solved together, each frozen once solved, so a row's interval never depends on the rows beside it
(per-condition tables and simulations are vectorised, and batching changes no bit).

Only observed (judged) counts are handled here; judge-corrected figures need the likelihood of the judged
counts through C^T p and of the calibration counts, which is not separable (`fairness` says what it uses).
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.special
import scipy.stats

from fairbench.metrics.row_metrics import ROW_METRICS

METRICS = ("kl_uniform", "fd_l1", "fd_l2")
_R_MAX = 60.0  # beyond this Fisher radius c(r) is the chi-square(1) quantile to 4 digits
_GRID = 48  # multipliers scanned per side before bisection
_BISECT = 24


# ------------------------------------------------------------------------------------------ calibration


@functools.lru_cache(maxsize=64)
def _critical_table(df: int, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    radii = np.concatenate([np.linspace(0.0, 8.0, 161), np.linspace(8.1, _R_MAX, 120)])
    lo = np.zeros_like(radii)
    hi = np.full_like(radii, scipy.stats.chi2.ppf(1 - alpha, df) * 1.01 + 1.0)
    nc = radii**2
    for _ in range(60):  # P((sqrt(X) - r)^2 <= c) is increasing in c: bisect
        c = 0.5 * (lo + hi)
        root = np.sqrt(c)
        inside = scipy.special.chndtr((radii + root) ** 2, df, nc) - scipy.special.chndtr(
            np.maximum(radii - root, 0.0) ** 2, df, nc
        )
        below = inside < 1 - alpha
        lo = np.where(below, c, lo)
        hi = np.where(below, hi, c)
    return radii, 0.5 * (lo + hi)


def sphere_critical(radius: np.ndarray, df: int, alpha: float = 0.05) -> np.ndarray:
    """1 - alpha quantile of (chi_df(r) - r)^2, the deviance of a point at Fisher radius r from U's sphere."""
    radii, table = _critical_table(int(df), float(alpha))
    r = np.clip(np.asarray(radius, dtype=np.float64), 0.0, _R_MAX)
    return np.interp(r, radii, table)


def fisher_radius(metric: str, theta: np.ndarray, n: np.ndarray, k: int) -> np.ndarray:
    """The Fisher radius of the level set {f = theta} near U for N = n samples (module docstring)."""
    theta = np.maximum(np.asarray(theta, dtype=np.float64), 0.0)
    if metric == "kl_uniform":
        return np.sqrt(2.0 * n * theta)
    if metric == "fd_l2":
        return np.sqrt(n * k) * theta
    return np.sqrt(n) * theta


# ------------------------------------------------------------------------------------ the stationary point


def _coordinates(metric: str, n: np.ndarray, mu: np.ndarray, nu: np.ndarray, upper: bool, side: np.ndarray, w,
                 k: int | None = None):
    """Each p_i minimising -n_i ln p_i + mu g(p_i) + nu p_i on the branch continuous from p-hat, with
    dp_i/dnu: (p, dp, w) of shape (R, k); p = +inf where the branch has no such point (nu too small).

    `w` warm-starts KL's Newton iterations (ln(k p)) and is returned updated; None for the other metrics.
    `k` is the number of groups when `n` holds only some of them (the leader path's others).
    """
    k = n.shape[1] if k is None else k
    mu, nu = mu[:, None], nu[:, None]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if metric == "fd_l2":  # g = (p - 1/k)^2 / 2: the constraint on fd_l2^2 / 2 has the same level sets
            if not upper:
                b = nu - mu / k
                disc = np.sqrt(b * b + 4 * mu * n)
                p = np.where(b > 0, 2 * n / (b + disc), (disc - b) / (2 * np.maximum(mu, 1e-300)))
                p = np.maximum(p, 0.0)
                dp = np.where(p > 0, -1.0 / (n / np.maximum(p, 1e-300) ** 2 + mu), 0.0)
                return p, dp, None
            m = -mu
            big_b = nu + m / k
            root = big_b * big_b - 4 * m * n
            p = np.where(n > 0, 2 * n / (big_b + np.sqrt(np.maximum(root, 0.0))), 0.0)
            p = np.where((big_b > 0) & (root >= 0), p, np.inf)
            dp = np.where((n > 0) & np.isfinite(p), -1.0 / (n / np.maximum(p, 1e-300) ** 2 - m), 0.0)
            return p, dp, None
        if metric == "fd_l1":  # g = |p - 1/k|
            if not upper:
                p_hi = np.where(nu + mu > 0, n / (nu + mu), np.inf)
                p_lo = np.where(nu - mu > 0, n / (nu - mu), np.inf)
                p = np.where(p_hi > 1 / k, p_hi, np.where(p_lo < 1 / k, p_lo, 1 / k))
            else:
                m = -mu
                p_hi = np.where(nu - m > 0, n / (nu - m), np.inf)  # the branch above 1/k
                p_lo = np.where(nu + m > 0, n / (nu + m), np.inf)  # the branch below 1/k
                hi_ok, lo_ok = p_hi > 1 / k, p_lo < 1 / k
                p = np.where(side & hi_ok, p_hi, np.where(lo_ok, p_lo, np.where(hi_ok, p_hi, np.inf)))
            kink = p == 1 / k
            dp = np.where((n > 0) & ~kink & np.isfinite(p), -np.square(p) / np.maximum(n, 1e-300), 0.0)
            return p, dp, None
        # KL: g = p ln(kp). In w = ln(kp): k n e^{-w} = mu (w + 1) + nu, a = mu + nu.
        a = mu + nu
        kn = k * n
        if not upper:
            zero_w = -a / np.maximum(mu, 1e-300)  # n_i = 0: mu (w + 1) + nu = 0
            for _ in range(8):
                e = kn * np.exp(-np.minimum(w, 700))
                step = (e - mu * w - a) / (e + mu)
                w = w + np.clip(step, -3.0, 3.0)
            p = np.where(n > 0, np.exp(np.minimum(w, 700)) / k,
                         np.where(mu > 0, np.exp(np.minimum(zero_w, 700)) / k, 0.0))
            dp = np.where(n > 0, -1.0 / (n / np.maximum(p, 1e-300) ** 2 + mu / np.maximum(p, 1e-300)),
                          np.where(mu > 0, -p / np.maximum(mu, 1e-300), 0.0))
            return p, dp, w
        m = -mu  # k n e^{-w} + m w = a on the branch w < ln(k n / m), where the left side falls
        w_top = np.log(np.maximum(kn, 1e-300) / np.maximum(m, 1e-300))
        feasible = a >= m * (w_top + 1) - 1e-12 * np.abs(a)
        w = np.minimum(w, w_top - 1e-9)
        for _ in range(8):
            e = kn * np.exp(-np.minimum(w, 700))
            slope = m - e
            step = np.where(slope < 0, -(e + m * w - a) / np.minimum(slope, -1e-300), -1.0)
            w = np.minimum(w + np.clip(step, -3.0, 3.0), w_top - 1e-12)
        p = np.where(n > 0, np.where(feasible, np.exp(w) / k, np.inf), 0.0)
        dp = np.where((n > 0) & np.isfinite(p), -1.0 / (n / np.maximum(p, 1e-300) ** 2 - m / np.maximum(p, 1e-300)), 0.0)
        return p, dp, w


def _solve_nu(metric, n, mu, upper, side, nu0, w0):
    """nu with sum p(mu, nu) = 1 (sum p falls as nu grows): safeguarded Newton. Returns (p, nu, w, ok)."""
    r, k = n.shape
    lo = np.full(r, -np.inf)  # sum p >= 1 here
    hi = np.full(r, np.inf)  # sum p < 1 here
    nu, w = nu0.copy(), w0
    ok = np.zeros(r, dtype=bool)
    for _ in range(80):
        p, dp, w_new = _coordinates(metric, n, mu, nu, upper, side, w)
        s = p.sum(axis=1)
        err = s - 1
        ok = np.isfinite(s) & (np.abs(err) < 1e-12)
        if w_new is not None:  # rows already solved keep theirs: a row's result never depends on its batch
            w = np.where(np.isfinite(w_new) & ~ok[:, None], w_new, w)
        if ok.all():
            break
        big = ~(s < 1)
        lo = np.where(big, np.maximum(lo, nu), lo)
        hi = np.where(big, hi, np.minimum(hi, nu))
        slope = dp.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = nu - err / slope
        fallback = np.where(
            np.isfinite(lo) & np.isfinite(hi), 0.5 * (lo + hi),
            np.where(np.isfinite(hi), hi - 2 * (np.abs(hi) + 1), lo + 2 * (np.abs(lo) + 1)),
        )
        good = np.isfinite(newton) & (newton > lo) & (newton < hi) & np.isfinite(s)
        nu = np.where(ok, nu, np.where(good, newton, fallback))
    jump = ~ok & np.isfinite(lo) & np.isfinite(hi)
    if jump.any():
        # sum p jumps across 1 at one nu (fd_l1: a share held at 1/k, or at 0, is free between its two
        # branches there): every mixture of the two sides is stationary, and one sums to 1.
        p_lo, _, _ = _coordinates(metric, n, mu, lo, upper, side, w)
        p_hi, _, _ = _coordinates(metric, n, mu, hi, upper, side, w)
        s_lo, s_hi = p_lo.sum(axis=1), p_hi.sum(axis=1)
        fine = jump & np.isfinite(s_lo) & np.isfinite(s_hi) & (s_lo >= 1) & (s_hi < 1)
        lam = np.where(fine, (s_lo - 1) / np.where(fine, s_lo - s_hi, 1.0), 0.0)[:, None]
        p = np.where(fine[:, None], (1 - lam) * p_lo + lam * p_hi, p)
        s = np.where(fine, p.sum(axis=1), s)
        ok |= fine
    p = np.where(ok[:, None], p / np.where(ok, s, 1.0)[:, None], 1.0 / k)
    return p, nu, w, ok


def _metric(metric: str, p: np.ndarray) -> np.ndarray:
    return ROW_METRICS[metric](p)


def deviance(n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Rows of counts n and of proportions p -> 2 sum_i n_i ln(p-hat_i / p_i), the multinomial deviance."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(n > 0, n * np.log(n / (n.sum(axis=1, keepdims=True) * p)), 0.0)
    return 2 * terms.sum(axis=1)


# ----------------------------------------------------------------------------------------------- intervals


def metric_interval(
    counts: np.ndarray, metric: str, alpha: float = 0.05, critical_at_zero: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (R, k) of (pseudo-)counts -> (lower, upper) of the 1 - alpha profile interval of `metric`.

    `critical_at_zero` (R,): the deviance above which the test of uniformity rejects, when it is not the
    chi-square(k - 1) quantile (the exact two-group test); c(r) is scaled by the same factor throughout.
    The lower end is exactly 0 when, and only when, that test does not reject.
    """
    with np.errstate(all="ignore"):  # the solvers carry inf and NaN through branches they then discard
        return _metric_interval(np.atleast_2d(np.asarray(counts, dtype=np.float64)), metric, alpha, critical_at_zero)


def _metric_interval(n: np.ndarray, metric: str, alpha: float, critical_at_zero) -> tuple[np.ndarray, np.ndarray]:
    r, k = n.shape
    total = n.sum(axis=1)
    p_hat = n / total[:, None]
    theta_hat = _metric(metric, p_hat)
    chi_k = scipy.stats.chi2.ppf(1 - alpha, k - 1)
    scale = np.ones(r) if critical_at_zero is None else np.asarray(critical_at_zero, dtype=np.float64) / chi_k
    rejects = deviance(n, np.full((r, k), 1.0 / k)) > scale * chi_k
    lower = np.zeros(r)
    if rejects.any():
        idx = np.flatnonzero(rejects)
        found = _crossing(metric, n[idx], theta_hat[idx], False, scale[idx], alpha)
        # The test rejected, so 0 is outside; a crossing found at 0 only means it lies below the grid's reach.
        lower[idx] = np.clip(found, np.nextafter(0.0, 1.0), theta_hat[idx])
    # A test that can never reject (two groups, under 10 samples) accepts every value up to the largest.
    upper = np.full(r, _metric(metric, np.eye(k)[:1])[0])
    finite = np.flatnonzero(np.isfinite(scale))
    if finite.size and metric == "fd_l1":
        # Above the estimate the path must leave p-hat in some direction; where p-hat is symmetric (uniform,
        # or equal shares among the groups seen) a tie would keep the stationary point still: a negligible
        # nudge to the first largest count picks one (every direction is equally near to second order).
        nudged = n[finite].copy()
        nudged[np.arange(finite.size), nudged.argmax(axis=1)] += 1e-3 * np.sqrt(total[finite])
        upper[finite] = _crossing(metric, nudged, theta_hat[finite], True, scale[finite], alpha)
    elif finite.size:
        upper[finite] = _upper_by_leader(metric, n[finite], theta_hat[finite], scale[finite], alpha)
    return lower, np.maximum(upper, theta_hat)


def _crossing(metric, n, theta_hat, upper: bool, scale, alpha) -> np.ndarray:
    """For each row, the metric value where D = c along the multiplier path on one side."""
    r, k = n.shape
    total = n.sum(axis=1)
    sign = -1.0 if upper else 1.0

    def critical(theta, rows):
        return scale[rows] * sphere_critical(fisher_radius(metric, theta, total[rows], k), k - 1, alpha)

    def evaluate(rows, s, nu, w):
        mu = sign * s * total[rows]
        p, nu, w, ok = _solve_nu(metric, n[rows], mu, upper, side[rows], nu, w)
        theta = _metric(metric, p)
        inside = ok & (deviance(n[rows], p) <= critical(theta, rows))
        return inside, ok, theta, nu, w, p

    side = n / total[:, None] >= 1 / k
    w_all = np.log(np.maximum(k * n / total[:, None], 1e-300))
    nu_all = total.copy()
    # Multipliers in units of N, scanned outward from the MLE (mu = 0) until D passes c.
    lo = np.zeros(r)  # the largest scale known inside (0: the MLE)
    hi = np.full(r, np.nan)  # the smallest known outside
    best = theta_hat.copy()
    folded = np.zeros(r, dtype=bool)  # the path ended before D reached c (see `_sphere_upper`)
    for s in np.geomspace(1e-6, 1e6, _GRID):
        rows = np.flatnonzero(np.isnan(hi))
        if rows.size == 0:
            break
        inside, ok, theta, nu, w, _ = evaluate(rows, np.full(rows.size, s), nu_all[rows], w_all[rows])
        nu_all[rows[inside]], w_all[rows[inside]] = nu[inside], w[inside]
        hi[rows[~inside]] = s
        folded[rows[~ok]] = True
        lo[rows[inside]] = s
        best[rows[inside]] = theta[inside]
    rows = np.flatnonzero(~np.isnan(hi))
    if rows.size:
        a, b = lo[rows], hi[rows]
        p_in = n[rows] / total[rows, None]
        p_out = p_in.copy()
        for _ in range(_BISECT):
            mid = np.where(a > 0, np.sqrt(a * b), b / 2)
            inside, ok, theta, nu, w, p = evaluate(rows, mid, nu_all[rows], w_all[rows])
            nu_all[rows[inside]], w_all[rows[inside]] = nu[inside], w[inside]
            a, b = np.where(inside, mid, a), np.where(inside, b, mid)
            best[rows] = np.where(inside, theta, best[rows])
            p_in = np.where(inside[:, None], p, p_in)
            p_out = np.where((~inside & ok)[:, None], p, p_out)
        if metric == "fd_l1":
            best[rows] = _segment(metric, n[rows], p_in, p_out, best[rows], upper, lambda th: critical(th, rows))
    # Rows that never passed c ran to the path's end: U below (theta 0), the most extreme point above.
    if not upper:
        best[np.isnan(hi)] = 0.0
    elif folded.any():
        best[folded] = np.maximum(best[folded], _sphere_upper(metric, theta_hat[folded], total[folded], k,
                                                              scale[folded], alpha))
    return best


def _segment(metric, n, p_in, p_out, best, upper: bool, critical) -> np.ndarray:
    """fd_l1's path jumps where a share sits at 1/k or a zero count's share leaves 0 (its one-dimensional
    problem is linear there): the points between the last one inside and the first outside lie on the
    segment joining them, where D is convex, so the crossing is bisected along it."""
    lo, hi = np.zeros(len(n)), np.ones(len(n))
    for _ in range(40):
        t = 0.5 * (lo + hi)
        p = (1 - t)[:, None] * p_in + t[:, None] * p_out
        theta = _metric(metric, p)
        inside = deviance(n, p) <= critical(theta)
        lo, hi = np.where(inside, t, lo), np.where(inside, hi, t)
        best = np.where(inside, np.maximum(best, theta) if upper else np.minimum(best, theta), best)
    return best


def _upper_by_leader(metric, n, theta_hat, scale, alpha) -> np.ndarray:
    """The upper end for KL and fd_l2, on the path parametrised by the largest group's share t.

    Raising these metrics moves mass to the largest group, whose one-dimensional problem folds on the way
    (its share passes the point where -n ln p - m g(p) stops being convex), so the multiplier path cannot
    follow it. A separable problem with one linear constraint has at most one coordinate on the concave
    side at its optimum; fixing that coordinate's share t gives the multiplier from its own equation,
    nu = n_j / t + m g'(t), and leaves one equation in m for the other shares (on their convex side) to sum
    to 1 - t. The crossing D = c is then bisected in t between p-hat_j and 1.
    """
    r, k = n.shape
    total = n.sum(axis=1)
    j = n.argmax(axis=1)
    rows = np.arange(r)
    others = np.ones((r, k), dtype=bool)
    others[rows, j] = False
    n_j = n[rows, j]
    n_rest = n[others].reshape(r, k - 1)
    side = np.zeros((r, k - 1), dtype=bool)

    def g_prime(x):
        with np.errstate(divide="ignore"):
            return np.log(k * x) + 1 if metric == "kl_uniform" else x - 1 / k

    w_mle = np.log(np.maximum(k * n_rest / total[:, None], 1e-300))  # KL's Newton starts at the MLE shares

    def rest(t, m):
        nu = n_j / t + m * g_prime(t)
        p, _, _ = _coordinates(metric, n_rest, -m, nu, True, side, w_mle, k)
        return p

    def excess(t, log_m):
        """sum of the other shares - (1 - t), and its derivative in ln m: decreasing from positive
        (m = 0 is the MLE's own rest) to -(1 - t)."""
        m = np.exp(log_m)
        p = rest(t, m)
        e = p.sum(axis=1) - (1 - t)
        # From -n/p - m g'(p) + nu = 0 with nu = n_j / t + m g'(t): dp/dm = (g'(p) - g'(t)) / (n/p^2 - m g''(p)).
        curv = n_rest / np.maximum(p, 1e-300) ** 2 - m[:, None] * (1 / np.maximum(p, 1e-300) if metric == "kl_uniform" else 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            dp = np.where(n_rest > 0, (g_prime(np.maximum(p, 1e-300)) - g_prime(t)[:, None]) / curv, 0.0)
        slope = m * dp.sum(axis=1)
        finite = np.isfinite(e)
        return np.where(finite, e, -1.0), np.where(finite & np.isfinite(slope), slope, np.nan)

    guess = np.log(total)  # warm start: the last solution's ln m

    def point(t):
        """The profile point with the leader at share t (R,), the others solved: (p, ok)."""
        nonlocal guess
        a, b = guess - 1.0, guess + 1.0
        (fa, _), (fb, _) = excess(t, a), excess(t, b)
        for _ in range(40):  # widen the bracket until it holds the root
            if np.all((fa > 0) & (fb <= 0)):
                break
            a = np.where(fa > 0, a, a - 3.0)
            b = np.where(fb <= 0, b, b + 3.0)
            (fa, _), (fb, _) = excess(t, a), excess(t, b)
        x = np.where(np.abs(fa) < np.abs(fb), a, b)
        for _ in range(60):  # Newton in ln m, kept inside the bracket (bisection when it would leave)
            fx, slope = excess(t, x)
            active = np.abs(fx) >= 1e-10  # solved rows stay put: a row's result never depends on its batch
            if not active.any():
                break
            right = fx <= 0
            a, b = np.where(right, a, x), np.where(right, x, b)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = x - fx / slope
            good = np.isfinite(step) & (step > np.minimum(a, b)) & (step < np.maximum(a, b))
            x = np.where(active, np.where(good, step, 0.5 * (a + b)), x)
        fx, _ = excess(t, x)
        for _ in range(80):  # rows Newton left unfinished (a kink in the others' shares): plain bisection
            stuck = np.abs(fx) >= 1e-10
            if not stuck.any():
                break
            right = fx <= 0
            a, b = np.where(stuck & ~right, x, a), np.where(stuck & right, x, b)
            x = np.where(stuck, 0.5 * (a + b), x)
            fx, _ = excess(t, x)
        b = x
        guess = b
        p_rest = rest(t, np.exp(b))
        p = np.empty((r, k))
        p[rows, j] = t
        p[others] = np.where(np.isfinite(p_rest), p_rest, 0.0).ravel()
        ok = np.all(np.isfinite(p_rest), axis=1) & (np.abs(p.sum(axis=1) - 1) < 1e-6)
        p /= p.sum(axis=1, keepdims=True)
        return p, ok

    def gap(t):  # D - c along the path: negative inside the interval, increasing in t
        p, ok = point(t)
        theta = _metric(metric, p)
        critical = scale * sphere_critical(fisher_radius(metric, theta, total, k), k - 1, alpha)
        return np.where(ok, deviance(n, p) - critical, np.inf), theta

    a = n_j / total  # the MLE: D = 0, inside
    b = np.full(r, 1.0 - 1e-12)
    fa = -scale * sphere_critical(fisher_radius(metric, theta_hat, total, k), k - 1, alpha)
    fb, theta_b = gap(b)
    best = np.where(fb <= 0, theta_b, theta_hat)  # the whole path inside: the most extreme point
    searching = fb > 0
    fb = np.where(np.isfinite(fb), fb, 1e6)
    for _ in range(60):  # Illinois regula falsi in t
        if not searching.any():
            break
        c = np.clip(b - fb * (b - a) / (fb - fa), a, b)
        c = np.where(np.isfinite(c), c, 0.5 * (a + b))
        fc, theta = gap(c)
        fc = np.where(np.isfinite(fc), fc, 1e6)
        out = fc > 0
        a, fa, b, fb = (np.where(out, a, c), np.where(out, fa * 0.5, fc),
                        np.where(out, c, b), np.where(out, fc, fb * 0.5))
        best = np.where(searching & ~out, theta, best)
        searching &= ((b - a) > 1e-10 * np.maximum(b, 1e-3)) & (np.abs(fc) > 1e-8)
    return best


def _sphere_upper(metric, theta_hat, total, k, scale, alpha) -> np.ndarray:
    """The upper end in the local picture: r_U = r-hat + sqrt(c(r_U)) on U's spheres.

    Above an estimate near a symmetric point the growing group's share leaves the branch the multiplier
    path follows (its one-dimensional problem folds) before D reaches c; there the metric's level sets
    are U's spheres to second order, D(r) = (r - r-hat)^2, and the crossing is this fixed point.
    """
    r_hat = fisher_radius(metric, theta_hat, total, k)
    r_up = r_hat
    for _ in range(60):
        r_up = r_hat + np.sqrt(scale * sphere_critical(r_up, k - 1, alpha))
    if metric == "kl_uniform":
        theta = np.square(r_up) / (2 * total)
    elif metric == "fd_l2":
        theta = r_up / np.sqrt(total * k)
    else:
        theta = r_up / np.sqrt(total)
    return np.minimum(theta, _metric(metric, np.eye(k)[:1]).repeat(len(theta)))
