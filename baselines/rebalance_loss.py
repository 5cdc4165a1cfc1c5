"""The bias-mitigation loss of `rebalance` (arXiv 2308.08638) and its deficit weights.

L = sum_g w_g (q_g - 1/|S|)^2, with q_g the auxiliary classifier's softmax for group g averaged over the
batch (the batch's expected group frequency). It is zero exactly when the batch is expected to be uniform.
w_g = 1 + |S| * max(0, 1/|S| - p_g), with p_g the base generator's measured share of group g: groups the base
under-produced weigh up to 2x, a group it produced at or above its fair share weighs 1, and a uniform base
gives the plain unweighted loss.
"""

from __future__ import annotations

import torch


def deficit_weights(base_share: torch.Tensor) -> torch.Tensor:
    n = base_share.numel()
    return 1.0 + n * (1.0 / n - base_share.double()).clamp(min=0.0)


def bias_mitigation_loss(probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """probs: N x |S| softmax rows; weights: |S|. Differentiable in probs."""
    q = probs.mean(0)
    target = 1.0 / probs.shape[1]
    return (weights.to(q.dtype) * (q - target) ** 2).sum()


def scheduled_weight(weight: float, warmup: int, step: int) -> float:
    """Linear warm-up of the loss weight over `warmup` steps (0: the full weight from the first step)."""
    return weight if warmup <= 0 else weight * min(1.0, (step + 1) / warmup)
