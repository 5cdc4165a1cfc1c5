"""RepFair-GAN (Kenfack et al. 2022): group-alternating discriminator batches with gradient-norm clipping.

Step t draws its real batch only from group t mod |S|, clips the discriminator's total gradient norm to
`clip_norm` (C) on that update, then takes the usual generator step. Every group thus gets the same number
of discriminator updates and no group's gradient can dominate them. The paper reports that C < 2 fails to
converge and C > 20 is biased again; the default is 5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from baselines.gan import GANConfig, build, gan_step
from fairbench.errors import FairbenchError
from fairbench.methods import METHODS, BatchSource, Trainable


@dataclass(frozen=True)
class RepFairConfig(GANConfig):
    clip_norm: float = 5.0


class RepFair:
    config_cls = RepFairConfig

    def create(self, task, config: RepFairConfig, device: torch.device) -> Trainable:
        if not config.clip_norm > 0:
            raise FairbenchError(f"repfair: clip_norm must be positive, got {config.clip_norm}")
        return build(task, config, device)

    def step(
        self, trainable: Trainable, config: RepFairConfig, batches: BatchSource, batch_size: int, step: int
    ) -> dict[str, float]:
        group = step % batches.n_groups
        return gan_step(trainable, batches, batch_size, config, group=group, clip=config.clip_norm)


METHODS.register("repfair", RepFair())
