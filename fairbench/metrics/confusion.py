"""A judge's confusion on labelled images: the counts and the row-normalised rates the corrected metrics use."""

from __future__ import annotations

import numpy as np


def confusion_counts(truth: np.ndarray, predicted: np.ndarray, n_groups: int) -> np.ndarray:
    """counts[i, j] = number of images of true group i labelled j."""
    counts = np.zeros((n_groups, n_groups), dtype=np.int64)
    np.add.at(counts, (np.asarray(truth, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return counts


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_groups: int) -> np.ndarray:
    """Row-normalised: entry [i, j] = P(predicted j | true i); a group absent from `truth` gets the identity row."""
    counts = confusion_counts(truth, predicted, n_groups).astype(np.float64)
    totals = counts.sum(1, keepdims=True)
    eye = np.eye(n_groups)
    return np.where(totals > 0, counts / np.maximum(totals, 1.0), eye)
