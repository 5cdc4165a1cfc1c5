"""Judge-error correction: undo a judge's known confusion on the judged group distribution.

With C[i, j] = P(h = j | true group i) measured on held-out real data, E[p̂] = Cᵀ p for the true
distribution p, so the corrected p̃ is the point of the probability simplex whose image Cᵀ p̃ is closest
to p̂ (least squares). For two groups this is CLEAM's point estimate clipped to [0, 1].

The correction assumes the judge errs on generated images as it does on the real held-out images; nothing
in the data can check that, so docs/metrics.md states it beside the corrected figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairbench.errors import FairbenchError

# Confusion matrices are estimated from counts, so rows sum to 1 up to float error; allow a little more
# for matrices written to a file with a handful of decimals.
_CONFUSION_ROW_ATOL = 1e-6
# Beyond this condition number the judge cannot tell the groups apart and the correction is not identified.
_MAX_CONFUSION_COND = 1e12


def check_confusion(confusion: np.ndarray, n_groups: int) -> np.ndarray:
    """Validate C and return it with rows renormalised to sum to exactly 1 (the correction relies on it)."""
    try:
        c = np.asarray(confusion, dtype=np.float64)
    except (TypeError, ValueError):
        raise FairbenchError(f"confusion matrix must be numeric, got {type(confusion).__name__}") from None
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise FairbenchError(f"confusion matrix must be square, got shape {c.shape}")
    if c.shape[0] != n_groups:
        raise FairbenchError(f"confusion matrix is {c.shape[0]}x{c.shape[1]} but the task has {n_groups} groups")
    if not np.all(np.isfinite(c)):
        raise FairbenchError("confusion matrix has non-finite entries")
    if np.any(c < 0):
        raise FairbenchError("confusion matrix has negative entries")
    sums = c.sum(axis=1)
    if np.any(np.abs(sums - 1.0) > _CONFUSION_ROW_ATOL):
        raise FairbenchError(
            f"confusion matrix rows must sum to 1 (C[i, j] = P(judge says j | true group i)), row sums {sums.tolist()}"
        )
    c = c / sums[:, None]
    if np.linalg.cond(c) > _MAX_CONFUSION_COND:
        raise FairbenchError(
            "confusion matrix is singular: the judge cannot tell some groups apart, so the correction is undefined"
        )
    return c


def simplex_lsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise argmin over the probability simplex of ‖a x − b_r‖₂ for b of shape (R, m); returns (R, k).

    A primal active-set method on the KKT system, exact in finitely many steps for a strictly convex
    problem (a of full column rank): every iterate is feasible, each equality-constrained subproblem on the
    free coordinates is solved directly, and a row stops when its subproblem optimum is non-negative and
    every bound multiplier is non-negative. Rows advance in lockstep so one batched solve serves them all
    (the bootstrap calls this for up to thousands of resamples).
    """
    k = a.shape[1]
    q = a.T @ a
    c = np.einsum("rm,mk->rk", b, a)  # row r: aᵀ b_r (einsum: a row never depends on its batch)
    n_rows = b.shape[0]
    tol = 1e-12 * max(1.0, float(np.abs(q).max()))
    x = np.full((n_rows, k), 1.0 / k)
    free = np.ones((n_rows, k), dtype=bool)
    running = np.arange(n_rows)
    diag = np.arange(k)
    for _ in range(50 * k + 50):
        if running.size == 0:
            return x / x.sum(axis=1, keepdims=True)  # accepted iterates are non-negative; pin the sum to 1
        fr = free[running]
        n = running.size
        # KKT of min ½zᵀqz − cᵀz s.t. Σz = 1 on the free set; a fixed coordinate gets the row z_i = 0.
        both = fr[:, :, None] & fr[:, None, :]
        kkt = np.zeros((n, k + 1, k + 1))
        kkt[:, :k, :k] = np.where(both, q, 0.0)
        kkt[:, diag, diag] = np.where(fr, q[diag, diag], 1.0)
        kkt[:, :k, k] = fr
        kkt[:, k, :k] = fr
        rhs = np.concatenate([np.where(fr, c[running], 0.0), np.ones((n, 1))], axis=1)
        sol = np.linalg.solve(kkt, rhs[:, :, None])[:, :, 0]
        z = np.where(fr, sol[:, :k], 0.0)
        nu = sol[:, k]  # q_FF z + nu = c_F: the gradient on the free set is -nu

        feasible = np.all(z >= 0, axis=1)
        # Multiplier of each held bound x_i >= 0: gradient_i + nu. A negative one means leaving the bound helps.
        mu = np.where(fr, np.inf, np.einsum("rk,kj->rj", z, q) - c[running] + nu[:, None])
        worst = np.argmin(mu, axis=1)
        optimal = feasible & (mu[np.arange(n), worst] >= -tol)
        release = feasible & ~optimal
        x[running[feasible]] = z[feasible]
        free[running[release], worst[release]] = True

        # Infeasible rows walk from x towards z until the first free coordinate hits zero, and fix it there.
        bad = ~feasible
        if np.any(bad):
            rows = running[bad]
            xs, zs = x[rows], z[bad]
            shrinking = fr[bad] & (zs < 0)
            with np.errstate(divide="ignore", invalid="ignore"):
                steps = np.where(shrinking, xs / (xs - zs), np.inf)
            alpha = steps.min(axis=1, keepdims=True)
            moved = xs + alpha * (zs - xs)
            blocking = shrinking & (steps <= alpha)
            moved[blocking] = 0.0
            x[rows] = moved
            free[rows] = free[rows] & ~blocking
        running = running[~optimal]
    raise RuntimeError("active-set solver did not converge; this is a bug in fairbench")  # pragma: no cover


def correct_rows(p_hat: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """Correct each row of a (R, |S|) proportion array with a validated confusion matrix."""
    k = confusion.shape[0]
    if k == 2:
        # Closed form (CLEAM): on the segment p = (1 - t, t), ‖Cᵀp − p̂‖² = 2 (p̂_1 − c01 − t (c11 − c01))²,
        # a 1-D convex quadratic, so the constrained optimum is the unconstrained one clipped to [0, 1].
        c01, c11 = confusion[0, 1], confusion[1, 1]
        t = np.clip((p_hat[:, 1] - c01) / (c11 - c01), 0.0, 1.0)
        return np.stack([1.0 - t, t], axis=1)
    # Resamples repeat for small N and small |S|: solve each distinct row once.
    unique, inverse = np.unique(p_hat, axis=0, return_inverse=True)
    # Rows of C sum to 1, so any solution of Cᵀx = p̂ already sums to 1; if it is also non-negative it is
    # the simplex optimum (residual 0). Only rows outside the image of the simplex need the active-set loop.
    # One inverse applied row by row (einsum, no BLAS blocking), so a row's result never depends on its batch.
    x = np.einsum("ij,rj->ri", np.linalg.inv(confusion.T), unique)
    outside = np.any(x < 0, axis=1)
    if np.any(outside):
        x[outside] = simplex_lsq(confusion.T, unique[outside])
    x = np.maximum(x, 0.0)
    x /= x.sum(axis=1, keepdims=True)
    return x[inverse.reshape(-1)]


@dataclass(frozen=True)
class Calibration:
    """The judge's confusion as used for correction: rates for the point estimate, counts for its uncertainty.

    `row_sizes[i]` is how many held-out images of group i the rates come from; infinite when the caller
    gives only rates, which then count as known exactly (no calibration noise in the corrected intervals).
    """

    rates: np.ndarray  # (k, k), rows sum to 1
    row_sizes: np.ndarray  # (k,)
    perfect: bool  # the held-out set showed no error at all: corrected = observed, exactly

    @staticmethod
    def build(
        confusion: np.ndarray | None, counts: np.ndarray | None, n_groups: int, exact: bool = False
    ) -> Calibration | None:
        """`exact`: rates given without counts are known without error (a simulation's own C). Otherwise a
        confusion without its counts is refused: treating an estimate as exact drops its noise silently."""
        if confusion is None and counts is None:
            return None
        if counts is None and not exact:
            raise FairbenchError(
                "a confusion matrix without the calibration counts it was estimated from would be taken as exact "
                "and its intervals would not cover; pass calibration_counts, or exact=True if it is known exactly"
            )
        table = None if counts is None else _check_calibration_counts(counts, n_groups)
        if confusion is None:
            assert table is not None
            confusion = table / table.sum(axis=1, keepdims=True)
        rates = check_confusion(confusion, n_groups)
        if table is None:
            sizes = np.full(n_groups, np.inf)
            perfect = bool(np.array_equal(rates, np.eye(n_groups)))
        else:
            sizes = table.sum(axis=1).astype(np.float64)
            perfect = bool(np.count_nonzero(table - np.diag(np.diag(table))) == 0)
        return Calibration(rates, sizes, perfect)


def _check_calibration_counts(counts: np.ndarray, n_groups: int) -> np.ndarray:
    try:
        table = np.asarray(counts, dtype=np.float64)
    except (TypeError, ValueError):
        raise FairbenchError(f"calibration counts must be numeric, got {type(counts).__name__}") from None
    if table.shape != (n_groups, n_groups):
        raise FairbenchError(f"calibration counts must be {n_groups}x{n_groups}, got shape {table.shape}")
    if not np.all(np.isfinite(table)) or np.any(table < 0) or np.any(table != np.round(table)):
        raise FairbenchError("calibration counts must be non-negative integers")
    if np.any(table.sum(axis=1) == 0):
        raise FairbenchError("calibration counts: every true group needs at least one held-out image")
    return table
