"""The four fairness metrics on rows of a (R, |S|) proportion array.

One formula serves point values, confidence-region vertices and bootstrap draws; the public, validating
functions live in `distribution`. Kept apart so `debias` and `regions` can use them without importing the reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np


def kl_rows(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    k = p.shape[-1]
    # 0 ln 0 = 0: a zero share takes ln 1 = 0 (no masked copies: this runs on every bootstrap draw).
    terms = p * np.log(np.where(p > 0, p * k, 1.0))
    # Rounding can push a value just outside the true range [0, ln k]; the metric's range is part of its contract.
    return np.clip(terms.sum(axis=-1), 0.0, math.log(k))


def kl_normalized_rows(p: np.ndarray) -> np.ndarray:
    return np.clip(kl_rows(p) / math.log(p.shape[-1]), 0.0, 1.0)


def fd_l1_rows(p: np.ndarray) -> np.ndarray:
    return np.abs(p - 1.0 / p.shape[-1]).sum(axis=-1)


def fd_l2_rows(p: np.ndarray) -> np.ndarray:
    return np.sqrt(np.square(p - 1.0 / p.shape[-1]).sum(axis=-1))


ROW_METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "kl_uniform": kl_rows,
    "kl_uniform_normalized": kl_normalized_rows,
    "fd_l1": fd_l1_rows,
    "fd_l2": fd_l2_rows,
}
