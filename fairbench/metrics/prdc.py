"""Precision, recall, density and coverage (Naeem et al. 2020) of generated features against real ones.

Definitions, with k-nearest-neighbour balls in feature space (Euclidean) and k = 5 by default:

- a real sample's radius is the distance to its k-th nearest other real sample; a generated one's likewise
  among the generated samples;
- precision: the share of generated samples inside at least one real ball (fidelity);
- recall: the share of real samples inside at least one generated ball (how much of the real data is drawn);
- density: the mean number of real balls around a generated sample, divided by k (1 for matching
  distributions; it can exceed 1, and unlike precision it is not fooled by real outliers);
- coverage: the share of real samples whose ball holds at least one generated sample (diversity, robust to
  generated outliers).

A ball is open (a point exactly on its boundary is outside), as in the authors' released code, so ties
decide the same way there and here. Distances are computed in row blocks, so memory grows as block x N, never N x N: the result does not
depend on the block size (exact comparisons of the same float64 distances). Balls are compared on squared
distances (the square root is monotone, so the k-th neighbour and every inside/outside decision are the
same), each block built in place: at 10,000 x 10,000 and d = 128 the elementwise passes, not the products,
were most of the time.

The real radii depend only on the reference, so a caller scoring many runs may compute them once
(`knn_square_radii`) and pass them in (`real_square_radii`), as FID's reference statistics are cached.
They stay squared: a square root and its square again is not the identity in floating point, and on
integer features (exact squared distances) that alone moved a boundary decision.

Cost (`bench/diversity.py`, one BLAS thread on a shared 2-core machine at load 3.8): 10,000 against 10,000
at d = 128 takes about 7 s with the real radii computed and 3.6 s with them cached (time is three N x N
distance passes, each a product, a few in-place passes and, for the radii, a partition per row); split
into two groups of 5,000 a side, as scoring compares them, 2.3 s and 1.5 s. Memory is two block x N float64
arrays, 160 MB at N = 10,000, whatever N is beyond that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fairbench.errors import FairbenchError
from fairbench.metrics.frechet import as_features

BLOCK = 1024  # rows of a distance block: 1024 x 10,000 float64 is 80 MB


@dataclass(frozen=True)
class PRDC:
    precision: float
    recall: float
    density: float
    coverage: float


def prdc(
    real: np.ndarray, generated: np.ndarray, k: int = 5, *, label: str = "the generated set",
    real_square_radii: np.ndarray | None = None,
) -> PRDC:
    """The four metrics of `generated` (M x d) against `real` (N x d). Both sets need more than k samples:
    with k or fewer there is no k-th neighbour, and the metric is refused with the reason.
    `real_square_radii`: `knn_square_radii(real, k)`, when the caller has them already."""
    x = as_features(real, "real features")
    y = as_features(generated, "generated features")
    if x.shape[1] != y.shape[1]:
        raise FairbenchError(f"real features have {x.shape[1]} dims, generated features {y.shape[1]}")
    if k < 1:
        raise FairbenchError(f"PRDC needs k >= 1, got {k}")
    for n, what in ((len(x), f"the real reference for {label}"), (len(y), label)):
        if n <= k:
            raise FairbenchError(f"{what} has {n} sample{'s' if n != 1 else ''}; PRDC with k = {k} needs at least {k + 1}")
    if real_square_radii is None:
        real_sq = knn_square_radii(x, k)
    elif np.shape(real_square_radii) != (len(x),):
        raise FairbenchError(f"real radii of shape {np.shape(real_square_radii)} for {len(x)} real samples")
    else:
        real_sq = np.asarray(real_square_radii, dtype=np.float64)
    fake_sq = knn_square_radii(y, k)
    inside_real = np.zeros(len(y), dtype=np.int64)  # per generated sample: real balls it falls in
    real_covered = np.zeros(len(x), dtype=bool)  # per real sample: its ball holds a generated sample
    real_recalled = np.zeros(len(x), dtype=bool)  # per real sample: inside some generated ball
    y_norms, y_doubled = _square_norms(y), 2.0 * y
    for start in range(0, len(x), BLOCK):
        d = _square_distances(x[start : start + BLOCK], y_doubled, y_norms)  # block of real rows x all generated
        within = d < real_sq[start : start + BLOCK, None]
        inside_real += np.count_nonzero(within, axis=0)
        real_covered[start : start + BLOCK] = within.any(axis=1)
        np.less(d, fake_sq[None, :], out=within)
        real_recalled[start : start + BLOCK] = within.any(axis=1)
    return PRDC(
        precision=float((inside_real > 0).mean()),
        recall=float(real_recalled.mean()),
        density=float(inside_real.sum() / (k * len(y))),
        coverage=float(real_covered.mean()),
    )


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (the row itself, at distance 0, not counted)."""
    return np.sqrt(knn_square_radii(x, k))


def knn_square_radii(x: np.ndarray, k: int) -> np.ndarray:
    """`knn_radii` squared, as `prdc` compares them."""
    x = as_features(x, "features")
    if not 1 <= k < len(x):
        raise FairbenchError(f"{len(x)} samples have no {k}-th nearest other sample")
    radii = np.empty(len(x))
    norms, doubled = _square_norms(x), 2.0 * x
    for start in range(0, len(x), BLOCK):
        d = _square_distances(x[start : start + BLOCK], doubled, norms)
        # the k+1-th smallest in each row: the row's own zero is among the k+1 smallest (in place: no copy)
        d.partition(k, axis=1)
        radii[start : start + BLOCK] = d[:, k]
    return radii


def _square_norms(b: np.ndarray) -> np.ndarray:
    return (b * b).sum(axis=1)


def _square_distances(a: np.ndarray, b_doubled: np.ndarray, b_norms: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances, a's rows x b's rows, via the expanded square ‖a‖² + ‖b‖² − 2 aᵀb (clipped
    at 0 against rounding), built in place: two block-sized arrays, where the plain expression made five.
    `b_doubled` is 2b, so the product is 2 aᵀb already: doubling is exact in floating point, so every value
    is the same bit for bit as doubling the product."""
    out = np.add.outer(_square_norms(a), b_norms)
    out -= a @ b_doubled.T
    return np.maximum(out, 0.0, out=out)
