"""Vanilla conditional DCGAN: real batches drawn uniformly from the (possibly imbalanced) training split."""

from __future__ import annotations

import torch

from baselines.gan import GANConfig, build, gan_step
from fairbench.methods import METHODS, BatchSource, Trainable


class Vanilla:
    """Conditional DCGAN trained on the data as it is: the reference every fairness method is compared with.
    With the default recipe it draws a single background on the bicolor tasks (mode dropping)."""

    config_cls = GANConfig

    def create(self, task, config: GANConfig, device: torch.device) -> Trainable:
        return build(task, config, device)

    def step(
        self, trainable: Trainable, config: GANConfig, batches: BatchSource, batch_size: int, step: int
    ) -> dict[str, float]:
        return gan_step(trainable, batches, batch_size, config, group=None, clip=None)


METHODS.register("vanilla", Vanilla())
