"""Representational fairness of a generator: how far the judged group distribution is from uniform.

Definitions (DESIGN.md section 5). A judge h labels each of N generated samples with a group in S;
p̂_g = (1/N) Σ_i 1[h(x_i) = g] over ALL groups, empty groups included as p̂_g = 0. Several published
implementations build p̂ from the labels that occur and so silently drop empty groups; a generator that
never produces a group then looks *fairer* (all samples in one of three groups would score 0 instead of
ln 3). Keeping every group is the point of `group_counts`.

Metrics, all lower-is-better and 0 exactly at the uniform distribution U = 1/|S|:
- ``kl_uniform``            Σ_g p̂_g ln(p̂_g |S|) with 0 ln 0 = 0, i.e. KL(p̂ ‖ U) in nats, in [0, ln|S|];
- ``kl_uniform_normalized`` the same divided by ln|S|, in [0, 1], comparable across group counts;
- ``fd_l1``                 Σ_g |p̂_g − 1/|S||, in [0, 2(1 − 1/|S|)];
- ``fd_l2``                 ‖p̂ − U‖₂, in [0, sqrt(1 − 1/|S|)].

Judge error biases p̂. With C[i, j] = P(h = j | true group i) measured on held-out real data,
E[p̂] = Cᵀ p for the true distribution p, so the corrected p̃ is the point of the probability simplex whose
image Cᵀ p̃ is closest to p̂ (least squares). For two groups this is CLEAM's point estimate clipped to
[0, 1]. Every metric is reported on p̂ and on p̃ (suffix ``_corrected``).

Uncertainty is a seeded percentile bootstrap over samples. Resampling N labels with replacement only
changes the counts, which are Multinomial(N, p̂), so the resamples are drawn as counts: the cost does not
grow with N and the metrics are evaluated for all resamples at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fairbench.errors import FairbenchError

__all__ = [
    "FAIRNESS_METRICS",
    "ConditionalFairnessReport",
    "FairnessReport",
    "MetricValue",
    "conditional_fairness_report",
    "correct_proportions",
    "fairness_report",
    "fd_l1",
    "fd_l2",
    "group_counts",
    "kl_uniform",
    "kl_uniform_normalized",
    "proportions",
]

# A proportion vector may be off by rounding only; anything more is a caller's mistake, not noise.
_PROBABILITY_ATOL = 1e-8
# Confusion matrices are estimated from counts, so rows sum to 1 up to float error; allow a little more
# for matrices written to a file with a handful of decimals.
_CONFUSION_ROW_ATOL = 1e-6
# Beyond this condition number the judge cannot tell the groups apart and the correction is not identified.
_MAX_CONFUSION_COND = 1e12


@dataclass(frozen=True)
class MetricValue:
    """A point estimate with its 95% bootstrap interval; the direction travels with it so tables need no lookup."""

    value: float
    ci95: tuple[float, float]
    higher_is_better: bool

    def to_json(self) -> dict:
        return {"value": self.value, "ci95": [self.ci95[0], self.ci95[1]], "higher_is_better": self.higher_is_better}


# --------------------------------------------------------------------------------------------- counting


def group_counts(predicted: np.ndarray, n_groups: int) -> np.ndarray:
    """Count judged labels over ALL `n_groups` groups, zeros kept, so an absent group still counts as unfair."""
    k = _check_n_groups(n_groups)
    labels = np.asarray(predicted)
    if labels.ndim != 1:
        raise FairbenchError(f"predicted labels must be a 1-D array of group ids, got shape {labels.shape}")
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise FairbenchError(f"predicted labels must be integers, got dtype {labels.dtype}")
    if labels.size:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= k:
            bad = lo if lo < 0 else hi
            raise FairbenchError(f"predicted label {bad} is outside [0, {k}) for a task with {k} groups")
    return np.bincount(labels.astype(np.int64, copy=False), minlength=k).astype(np.int64)


def proportions(counts: np.ndarray) -> np.ndarray:
    """p̂ = counts / N; there is no distribution to judge without samples, so N = 0 is an error."""
    c = np.asarray(counts)
    if c.ndim != 1 or c.size < 2:
        raise FairbenchError(f"counts must be a 1-D array over at least 2 groups, got shape {c.shape}")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise FairbenchError("counts must be finite and non-negative")
    total = c.sum()
    if total == 0:
        raise FairbenchError("no samples: cannot compute group proportions from zero counts")
    return c.astype(np.float64) / float(total)


# ----------------------------------------------------------------------------------------------- metrics
# The row-wise versions take a (R, |S|) array so the bootstrap evaluates every resample in one call; the
# public functions validate one distribution and delegate, so point values and resamples share one formula.


def _kl_rows(p: np.ndarray) -> np.ndarray:
    k = p.shape[-1]
    positive = p > 0
    terms = np.zeros_like(p)
    terms[positive] = p[positive] * np.log(p[positive] * k)  # 0 ln 0 = 0 by leaving those terms at zero
    # Rounding can push a value just outside the true range [0, ln k]; the metric's range is part of its contract.
    return np.clip(terms.sum(axis=-1), 0.0, math.log(k))


def _kl_normalized_rows(p: np.ndarray) -> np.ndarray:
    return np.clip(_kl_rows(p) / math.log(p.shape[-1]), 0.0, 1.0)


def _fd_l1_rows(p: np.ndarray) -> np.ndarray:
    return np.abs(p - 1.0 / p.shape[-1]).sum(axis=-1)


def _fd_l2_rows(p: np.ndarray) -> np.ndarray:
    return np.sqrt(np.square(p - 1.0 / p.shape[-1]).sum(axis=-1))


_ROW_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "kl_uniform": _kl_rows,
    "kl_uniform_normalized": _kl_normalized_rows,
    "fd_l1": _fd_l1_rows,
    "fd_l2": _fd_l2_rows,
}


def _check_distribution(p: np.ndarray, what: str = "p") -> np.ndarray:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1 or arr.size < 2:
        raise FairbenchError(f"{what} must be a 1-D distribution over at least 2 groups, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise FairbenchError(f"{what} must be finite and non-negative, got {arr.tolist()}")
    if abs(arr.sum() - 1.0) > _PROBABILITY_ATOL:
        raise FairbenchError(f"{what} must sum to 1, sums to {arr.sum()!r}")
    return arr


def kl_uniform(p: np.ndarray) -> float:
    """KL(p ‖ U) in nats: the information a judge gains by learning the generator is not uniform."""
    return float(_kl_rows(_check_distribution(p)[None, :])[0])


def kl_uniform_normalized(p: np.ndarray) -> float:
    """KL(p ‖ U) / ln|S| in [0, 1], so tasks with different numbers of groups share one scale."""
    return float(_kl_normalized_rows(_check_distribution(p)[None, :])[0])


def fd_l1(p: np.ndarray) -> float:
    """Σ|p_g − 1/|S||: twice the share of samples that would have to change group to reach uniform."""
    return float(_fd_l1_rows(_check_distribution(p)[None, :])[0])


def fd_l2(p: np.ndarray) -> float:
    """‖p − U‖₂: the fairness discrepancy used by the FD literature; dominated by the worst groups."""
    return float(_fd_l2_rows(_check_distribution(p)[None, :])[0])


FAIRNESS_METRICS: dict[str, Callable[[np.ndarray], float]] = {
    "kl_uniform": kl_uniform,
    "kl_uniform_normalized": kl_uniform_normalized,
    "fd_l1": fd_l1,
    "fd_l2": fd_l2,
}


# -------------------------------------------------------------------------------------- judge correction


def _check_confusion(confusion: np.ndarray, n_groups: int) -> np.ndarray:
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


def _simplex_lsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise argmin over the probability simplex of ‖a x − b_r‖₂ for b of shape (R, m); returns (R, k).

    A primal active-set method on the KKT system, exact in finitely many steps for a strictly convex
    problem (a of full column rank): every iterate is feasible, each equality-constrained subproblem on the
    free coordinates is solved directly, and a row stops when its subproblem optimum is non-negative and
    every bound multiplier is non-negative. Rows advance in lockstep so one batched solve serves them all
    (the bootstrap calls this for up to thousands of resamples).
    """
    k = a.shape[1]
    q = a.T @ a
    c = b @ a  # row r: aᵀ b_r
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
        mu = np.where(fr, np.inf, z @ q - c[running] + nu[:, None])
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


def _correct_rows(p_hat: np.ndarray, confusion: np.ndarray) -> np.ndarray:
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
    x = np.linalg.solve(confusion.T, unique.T).T
    outside = np.any(x < 0, axis=1)
    if np.any(outside):
        x[outside] = _simplex_lsq(confusion.T, unique[outside])
    x = np.maximum(x, 0.0)
    x /= x.sum(axis=1, keepdims=True)
    return x[inverse.reshape(-1)]


def correct_proportions(p_hat: np.ndarray, confusion: np.ndarray) -> np.ndarray:
    """Undo judge error: the simplex point p̃ whose expected judged distribution Cᵀp̃ is closest to p̂."""
    p = _check_distribution(p_hat, "p_hat")
    c = _check_confusion(confusion, p.size)
    return _correct_rows(p[None, :], c)[0]


# ----------------------------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class FairnessReport:
    """Judged (p̂) and judge-corrected (p̃) distributions with every metric on both."""

    observed: list[float]
    corrected: list[float]
    metrics: dict[str, MetricValue]
    counts: list[int]

    def to_json(self) -> dict:
        return {
            "observed": list(self.observed),
            "corrected": list(self.corrected),
            "counts": list(self.counts),
            "metrics": {name: m.to_json() for name, m in self.metrics.items()},
        }


@dataclass(frozen=True)
class ConditionalFairnessReport:
    """Per-condition reports plus their mean and worst case: averaging alone would hide one unfair prompt."""

    conditions: list[int]
    per_condition: list[FairnessReport]
    summary: dict[str, MetricValue]

    def to_json(self) -> dict:
        return {
            "conditions": list(self.conditions),
            "per_condition": [r.to_json() for r in self.per_condition],
            "summary": {name: m.to_json() for name, m in self.summary.items()},
        }


def _metric_names() -> list[str]:
    names = []
    for name in _ROW_METRICS:
        names += [name, f"{name}_corrected"]
    return names


def _metric_table(observed: np.ndarray, corrected: np.ndarray) -> np.ndarray:
    """(R, n_metrics) values in `_metric_names()` order for R observed/corrected distributions."""
    cols = []
    for fn in _ROW_METRICS.values():
        cols += [fn(observed), fn(corrected)]
    return np.stack(cols, axis=1)


def _ci95(samples: np.ndarray) -> np.ndarray:
    """Percentile interval along axis 0; (2, n_metrics)."""
    return np.percentile(samples, [2.5, 97.5], axis=0)


def _metric_values(point: np.ndarray, samples: np.ndarray, names: list[str]) -> dict[str, MetricValue]:
    lo_hi = _ci95(samples)
    return {
        name: MetricValue(float(point[j]), (float(lo_hi[0, j]), float(lo_hi[1, j])), higher_is_better=False)
        for j, name in enumerate(names)
    }


# Far beyond any real sensitive attribute or class set; above it, arrays sized by the count would be huge.
MAX_CATEGORIES = 100_000


def _check_n_groups(n_groups: int) -> int:
    if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)):
        raise FairbenchError(f"n_groups must be an integer, got {n_groups!r}")
    if not 2 <= n_groups <= MAX_CATEGORIES:
        raise FairbenchError(f"n_groups must be within [2, {MAX_CATEGORIES}], got {n_groups}")
    return int(n_groups)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise FairbenchError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_n_resamples(n_resamples: int) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise FairbenchError(f"n_resamples must be a positive integer, got {n_resamples!r}")
    return int(n_resamples)


def _bootstrap(
    counts: np.ndarray, confusion: np.ndarray | None, n_resamples: int, rng: np.random.Generator
) -> tuple[FairnessReport, np.ndarray]:
    """One report plus the (R, n_metrics) resampled metric table, so conditional summaries can reuse it."""
    n = int(counts.sum())
    p_hat = proportions(counts)
    correct = (lambda p: p) if confusion is None else (lambda p: _correct_rows(p, confusion))
    p_tilde = correct(p_hat[None, :])
    resampled = rng.multinomial(n, p_hat, size=n_resamples).astype(np.float64) / n
    samples = _metric_table(resampled, correct(resampled))
    point = _metric_table(p_hat[None, :], p_tilde)[0]
    report = FairnessReport(
        observed=p_hat.tolist(),
        corrected=p_tilde[0].tolist(),
        metrics=_metric_values(point, samples, _metric_names()),
        counts=[int(v) for v in counts],
    )
    return report, samples


def fairness_report(
    predicted: np.ndarray,
    n_groups: int,
    confusion: np.ndarray | None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> FairnessReport:
    """All fairness metrics on p̂ and p̃ with seeded 95% bootstrap intervals; no confusion means no correction."""
    counts = group_counts(predicted, n_groups)
    c = None if confusion is None else _check_confusion(confusion, n_groups)
    report, _ = _bootstrap(counts, c, _check_n_resamples(n_resamples), np.random.default_rng(_check_seed(seed)))
    return report


def conditional_fairness_report(
    predicted: np.ndarray,
    conditions: np.ndarray,
    n_groups: int,
    n_conditions: int,
    confusion: np.ndarray | None,
    n_resamples: int = 1000,
    seed: int = 0,
) -> ConditionalFairnessReport:
    """Fairness per condition (e.g. prompt or class) plus the mean and worst case over conditions.

    The bootstrap is stratified: each resample redraws every condition's counts from its own p̂ with the
    condition's own N (one seeded generator, conditions in sorted order), and the summary intervals come from
    the mean / max over conditions within each resample, so they reflect the joint uncertainty.
    Conditions without samples are skipped rather than counted as fair or unfair.
    """
    k = _check_n_groups(n_groups)
    if isinstance(n_conditions, bool) or not isinstance(n_conditions, (int, np.integer)):
        raise FairbenchError(f"n_conditions must be an integer, got {n_conditions!r}")
    if not 1 <= n_conditions <= MAX_CATEGORIES:
        raise FairbenchError(f"n_conditions must be within [1, {MAX_CATEGORIES}], got {n_conditions}")
    _check_seed(seed)
    labels = np.asarray(predicted)
    conds = np.asarray(conditions)
    if conds.ndim != 1:
        raise FairbenchError(f"conditions must be a 1-D array of condition ids, got shape {conds.shape}")
    if labels.ndim != 1 or labels.shape != conds.shape:
        raise FairbenchError(
            f"predicted and conditions must be 1-D arrays of the same length, got {labels.shape} and {conds.shape}"
        )
    if conds.size and not np.issubdtype(conds.dtype, np.integer):
        raise FairbenchError(f"conditions must be integers, got dtype {conds.dtype}")
    if conds.size and (conds.min() < 0 or conds.max() >= n_conditions):
        bad = int(conds.min()) if conds.min() < 0 else int(conds.max())
        raise FairbenchError(f"condition id {bad} is outside [0, {n_conditions})")
    group_counts(labels, k)  # validates labels once, with the whole-array error message
    if labels.size == 0:
        raise FairbenchError("no samples: every condition is empty")
    c = None if confusion is None else _check_confusion(confusion, k)
    r = _check_n_resamples(n_resamples)

    # counts[condition, group] in one pass.
    table = np.bincount(conds.astype(np.int64) * k + labels.astype(np.int64), minlength=n_conditions * k)
    table = table.reshape(n_conditions, k).astype(np.int64)
    present = [int(i) for i in np.flatnonzero(table.sum(axis=1) > 0)]

    rng = np.random.default_rng(seed)
    reports, tables = [], []
    for cond in present:
        report, samples = _bootstrap(table[cond], c, r, rng)
        reports.append(report)
        tables.append(samples)

    names = _metric_names()
    per_point = np.array([[rep.metrics[name].value for name in names] for rep in reports])  # (C, M)
    stacked = np.stack(tables)  # (C, R, M)
    # All metrics are lower-is-better, so the worst condition is the maximum.
    mean = _metric_values(per_point.mean(axis=0), stacked.mean(axis=0), names)
    worst = _metric_values(per_point.max(axis=0), stacked.max(axis=0), names)
    summary: dict[str, MetricValue] = {}
    for name in names:
        summary[f"{name}_cond_mean"] = mean[name]
        summary[f"{name}_cond_worst"] = worst[name]
    return ConditionalFairnessReport(conditions=present, per_condition=reports, summary=summary)
