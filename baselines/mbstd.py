"""`mbstd`: vanilla with a minibatch standard-deviation channel in D, the "imbalanced but not collapsed"
comparator. Measured in issue 10: a batch-level signal lets D see that a one-background batch is fake, which
removed the background collapse that every per-image discriminator showed on mnist-bicolor."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.gan import GANConfig, build, gan_step
from fairbench.methods import METHODS, BatchSource, Trainable


@dataclass(frozen=True)
class MbstdConfig(GANConfig):
    minibatch_std: bool = True


class Mbstd:
    """Vanilla with a minibatch standard-deviation channel in D (groups of mbstd_group samples): D can see that
    a batch lacks variety, which counters mode dropping."""

    config_cls = MbstdConfig

    def create(self, task, config: MbstdConfig, device: torch.device) -> Trainable:
        return build(task, config, device)

    def step(
        self, trainable: Trainable, config: MbstdConfig, batches: BatchSource, batch_size: int, step: int
    ) -> dict[str, float]:
        return gan_step(trainable, batches, batch_size, config, group=None, clip=None)


METHODS.register("mbstd", Mbstd())
