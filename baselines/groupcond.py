"""`groupcond`: the fair-by-construction reference. G is also conditioned on the sensitive group and is
sampled uniformly over groups, so the board shows what "fair" looks like at this architecture's quality.

Training: each real batch holds equal counts of every group (drawn per group, so each image's true group is
known); the fake batch gets the same class and group labels, with z[:, 0] drawn from N(0, 1) restricted to
that group's slice of Phi (baselines.cdcgan.latent_for_group), which is exactly how the sampler's z picks
the group at scoring time. D's projection head is on the joint label (class, group), so G must follow g.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from baselines.cdcgan import latent_for_group
from baselines.gan import GANConfig, build
from fairbench.methods import METHODS, BatchSource, Trainable


def balanced_real(batches: BatchSource, batch_size: int):
    """(images, class labels, groups) with batch_size // |S| images of each group (the first get the rest)."""
    n = batches.n_groups
    parts = [batches.real(batch_size // n + (g < batch_size % n), group=g) for g in range(n)]
    groups = torch.cat([torch.full((len(p[1]),), g, dtype=torch.int64) for g, p in enumerate(parts)])
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), groups.to(batches.device)


def group_noise(batches: BatchSource, groups: torch.Tensor, dim: int) -> torch.Tensor:
    z = batches.noise(len(groups), dim)
    u = 0.5 * (1 + torch.erf(batches.noise(len(groups), 1)[:, 0] / 2**0.5))  # U(0, 1), from the seeded rng
    z[:, 0] = latent_for_group(groups, batches.n_groups, u)
    return z


class GroupCond:
    config_cls = GANConfig

    def create(self, task, config: GANConfig, device: torch.device) -> Trainable:
        return build(task, config, device, n_groups=task.n_groups)

    def step(
        self, trainable: Trainable, config: GANConfig, batches: BatchSource, batch_size: int, step: int
    ) -> dict[str, float]:
        gen, disc = trainable.modules["generator"], trainable.modules["discriminator"]
        real, y, groups = balanced_real(batches, batch_size)
        labels = y if gen.num_classes > 0 else None
        joint = (y * batches.n_groups + groups) if gen.num_classes > 0 else groups
        with torch.no_grad():
            fake = gen(group_noise(batches, groups, config.latent_dim), labels, groups=groups)
        loss_d = F.softplus(-disc(real, joint)).mean() + F.softplus(disc(fake, joint)).mean()
        opt = trainable.optimizers["discriminator"]
        opt.zero_grad(set_to_none=True)
        loss_d.backward()
        opt.step()
        fake = gen(group_noise(batches, groups, config.latent_dim), labels, groups=groups)
        loss_g = F.softplus(-disc(fake, joint)).mean()
        opt = trainable.optimizers["generator"]
        opt.zero_grad(set_to_none=True)
        loss_g.backward()
        opt.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}


METHODS.register("groupcond", GroupCond())
