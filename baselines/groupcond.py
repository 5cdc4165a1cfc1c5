"""`groupcond`: the fair-by-construction reference. G is also conditioned on the sensitive group and is
sampled uniformly over groups, so the board shows what "fair" looks like at this architecture's quality.

Training: each real batch holds equal counts of every group (drawn per group, so each image's true group is
known); the fake batch gets the same class and group labels, with z[:, 0] drawn from N(0, 1) restricted to
that group's slice of Phi (baselines.cdcgan.latent_for_group), which is exactly how the sampler's z picks
the group at scoring time. D's projection head is on the joint label (class, group), so G must follow g.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.cdcgan import group_of_latent, latent_for_group
from baselines.gan import GANConfig, build, refuse_recipe_terms
from fairbench.errors import FairbenchError
from fairbench.judges import Judge
from fairbench.methods import METHODS, BatchSource, Trainable
from fairbench.submission.samples import Samples, samples_from_generator
from fairbench.submission.sampling import sample_latents
from fairbench.task_registry import TaskSpec


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
    """Fair by construction: G is told which group to draw and D sees the group, so sampling the groups
    uniformly gives equal shares; the reference for what a fair generator of the same size looks like."""

    config_cls = GANConfig

    def create(self, task, config: GANConfig, device: torch.device) -> Trainable:
        refuse_recipe_terms("groupcond", config)
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


def asked_group_agreement(model: nn.Module, judge: Judge, task: TaskSpec, n_samples: int, seed: int) -> np.ndarray:
    """Per group, the share of the task's seeded samples that the judge assigns to the group they were drawn for.

    A groupcond generator reads each sample's group off its first latent, so every sample comes with the group it
    should show: the judge's agreement says how recognisably each group is drawn, where the judged shares alone
    cannot (a uniform sampler is judged uniform only if its images are read right). On real images the same
    figure is the judge's recall. NaN for a group no sample was drawn for.
    """
    return group_agreement(samples_from_generator(model, task, n_samples, seed, judge=judge))


def group_agreement(samples: Samples) -> np.ndarray:
    """`asked_group_agreement` of samples already drawn and judged (`fairbench.submission.samples`)."""
    if samples.groups is None or samples.latent_dim is None or samples.seed is None:
        raise FairbenchError(f"{samples.name}: agreement needs judged samples of a generator")
    n_groups = samples.task.n_groups
    asked = group_of_latent(sample_latents(len(samples), samples.latent_dim, samples.seed)[:, 0], n_groups).numpy()
    judged = samples.groups
    return np.array([(judged[asked == g] == g).mean() if (asked == g).any() else np.nan for g in range(n_groups)])


METHODS.register("groupcond", GroupCond())
