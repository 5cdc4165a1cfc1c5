"""The Vendi score (Friedman & Dieng 2023): the effective number of distinct samples in a set.

With the cosine-similarity kernel on feature vectors, K = X Xᵀ for unit-norm rows, the score is
exp(-Σ λ log λ) over the eigenvalues λ of K / n: 1 when every sample is the same direction, n when all are
orthogonal. The nonzero eigenvalues of K / n equal those of the d x d matrix Xᵀ X / n, which is accumulated
in chunks, so memory is flat in n and time linear in it.
"""

from __future__ import annotations

import numpy as np

from fairbench.errors import FairbenchError
from fairbench.metrics.frechet import as_features

BLOCK = 4096


def vendi_score(features: np.ndarray, *, label: str = "the generated set") -> float:
    x = as_features(features)
    if len(x) < 1:
        raise FairbenchError(f"{label} has no samples; the Vendi score needs at least 1")
    gram = np.zeros((x.shape[1], x.shape[1]))
    for start in range(0, len(x), BLOCK):
        block = x[start : start + BLOCK]
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        if (norms == 0).any():
            raise FairbenchError(f"{label} has an all-zero feature vector: its cosine similarity is undefined")
        unit = block / norms
        gram += unit.T @ unit
    eigenvalues = np.linalg.eigvalsh(gram / len(x))
    eigenvalues = eigenvalues[eigenvalues > 0]  # rounding leaves tiny negatives where the rank is below d
    eigenvalues = eigenvalues / eigenvalues.sum()  # the trace is 1 up to rounding
    return float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))
