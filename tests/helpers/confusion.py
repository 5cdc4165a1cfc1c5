"""Judge confusion matrices for tests that need a noisy, invertible judge."""

from __future__ import annotations

import numpy as np


def noisy_confusion(k, rng, accuracy=0.8):
    """A well-conditioned, diagonally dominant row-stochastic matrix."""
    off = rng.dirichlet(np.ones(k - 1), size=k) * (1 - accuracy)
    c = np.empty((k, k))
    for i in range(k):
        c[i, i] = accuracy
        c[i, np.arange(k) != i] = off[i]
    return c
