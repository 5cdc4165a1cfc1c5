"""One judged distribution over the groups: counting labels, and the four distances from uniform.

Definitions (docs/metrics.md, "Fairness metrics"). A judge h labels each of N generated samples with a group in S;
p̂_g = (1/N) Σ_i 1[h(x_i) = g] over ALL groups, empty groups included as p̂_g = 0. Several published
implementations build p̂ from the labels that occur and so silently drop empty groups; a generator that
never produces a group then looks *fairer* (all samples in one of three groups would score 0 instead of
ln 3). Keeping every group is the point of `group_counts`.

Metrics, all lower-is-better and 0 exactly at the uniform distribution U = 1/|S|:
- ``kl_uniform``            Σ_g p̂_g ln(p̂_g |S|) with 0 ln 0 = 0, i.e. KL(p̂ ‖ U) in nats, in [0, ln|S|];
- ``kl_uniform_normalized`` the same divided by ln|S|, in [0, 1], comparable across group counts;
- ``fd_l1``                 Σ_g |p̂_g − 1/|S||, in [0, 2(1 − 1/|S|)];
- ``fd_l2``                 ‖p̂ − U‖₂, in [0, sqrt(1 − 1/|S|)].
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from fairbench.errors import FairbenchError
from fairbench.metrics.row_metrics import fd_l1_rows, fd_l2_rows, kl_normalized_rows, kl_rows

# A proportion vector may be off by rounding only; anything more is a caller's mistake, not noise.
_PROBABILITY_ATOL = 1e-8

# Far beyond any real sensitive attribute or class set; above it, arrays sized by the count would be huge.
MAX_CATEGORIES = 100_000


def check_n_groups(n_groups: int) -> int:
    if isinstance(n_groups, bool) or not isinstance(n_groups, (int, np.integer)):
        raise FairbenchError(f"n_groups must be an integer, got {n_groups!r}")
    if not 2 <= n_groups <= MAX_CATEGORIES:
        raise FairbenchError(f"n_groups must be within [2, {MAX_CATEGORIES}], got {n_groups}")
    return int(n_groups)


def group_counts(predicted: np.ndarray, n_groups: int) -> np.ndarray:
    """Count judged labels over ALL `n_groups` groups, zeros kept, so an absent group still counts as unfair."""
    k = check_n_groups(n_groups)
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


# The public functions validate one distribution and delegate to the row-wise versions (`row_metrics`), so point
# values, region vertices and bootstrap draws share one formula.


def check_distribution(p: np.ndarray, what: str = "p") -> np.ndarray:
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
    return float(kl_rows(check_distribution(p)[None, :])[0])


def kl_uniform_normalized(p: np.ndarray) -> float:
    """KL(p ‖ U) / ln|S| in [0, 1], so tasks with different numbers of groups share one scale."""
    return float(kl_normalized_rows(check_distribution(p)[None, :])[0])


def fd_l1(p: np.ndarray) -> float:
    """Σ|p_g − 1/|S||: twice the share of samples that would have to change group to reach uniform."""
    return float(fd_l1_rows(check_distribution(p)[None, :])[0])


def fd_l2(p: np.ndarray) -> float:
    """‖p − U‖₂: the fairness discrepancy used by the FD literature; dominated by the worst groups."""
    return float(fd_l2_rows(check_distribution(p)[None, :])[0])


FAIRNESS_METRICS: dict[str, Callable[[np.ndarray], float]] = {
    "kl_uniform": kl_uniform,
    "kl_uniform_normalized": kl_uniform_normalized,
    "fd_l1": fd_l1,
    "fd_l2": fd_l2,
}
