"""RepFair-GAN (Kenfack et al. 2022, arXiv 2207.10653) in its published variants, one method, config `variant`.

The paper's idea, in its words: "controlling the groups' gradient norm by performing group-wise gradient
norm clipping in the discriminator during the training". Every variant draws step t's real batch only from
group t mod |S| (so every group gets the same number of discriminator updates) and then takes the usual
generator step; they differ in *what* is clipped:

- `alg1` (the paper's Algorithm 1): the gradient of the one-group real-batch loss softplus(-D(x)) is clipped
  to total norm C and applied; then a separate, unclipped D step on the generated batch softplus(D(G(z))).
- `authors` (the authors' public TensorFlow code): one D step on the whole loss (real + fake) whose gradient
  is clipped per tensor (`clip_by_norm(g, C)` on every parameter tensor; they used C = 2 and Adam lr 1e-4).
- `total-norm` (this project's first version): one D step on the whole loss, gradient clipped to total
  norm C (`torch.nn.utils.clip_grad_norm_`).

`clip_norm` (C) defaults to each variant's published value when left unset: 5 (the paper's MNIST setting;
it reports C < 2 fails to converge and C > 20 is biased again) for `alg1` and `total-norm`, 2 for `authors`.
With Adam the clip changes little (Adam normalises the step size); `optimizer_d=sgd` makes the clip bound
the step: under SGD a clipped update moves D's parameters by at most lr_d * C (per tensor for `authors`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from baselines.gan import GANConfig, build, generator_update, refuse_recipe_terms
from fairbench.errors import FairbenchError
from fairbench.methods import METHODS, BatchSource, Trainable

VARIANT_CLIP = {"alg1": 5.0, "authors": 2.0, "total-norm": 5.0}


@dataclass(frozen=True)
class RepFairConfig(GANConfig):
    variant: Literal["alg1", "authors", "total-norm"] = "alg1"  # the paper's Algorithm 1, its code, or one norm
    clip_norm: float | None = None  # C; none: the variant's published C (alg1 5, authors 2, total-norm 5)


def clip_value(config: RepFairConfig) -> float:
    return VARIANT_CLIP[config.variant] if config.clip_norm is None else float(config.clip_norm)


def clip_per_tensor_(parameters, max_norm: float) -> float:
    """tf.clip_by_norm on every gradient tensor separately; returns the largest norm before clipping."""
    largest = 0.0
    for p in parameters:
        if p.grad is None:
            continue
        norm = float(p.grad.norm())
        largest = max(largest, norm)
        if norm > max_norm:
            p.grad.mul_(max_norm / norm)
    return largest


def _d_setup(t: Trainable, y: torch.Tensor):
    gen, disc = t.modules["generator"], t.modules["discriminator"]
    return gen, disc, t.optimizers["discriminator"], (y if gen.num_classes > 0 else None)


def alg1_update(t: Trainable, real, y, noise, clip: float) -> dict[str, float]:
    """Algorithm 1: clipped step on the one-group real batch's loss, then an unclipped step on fakes."""
    gen, disc, opt, labels = _d_setup(t, y)
    loss_real = F.softplus(-disc(real, labels)).mean()
    opt.zero_grad(set_to_none=True)
    loss_real.backward()
    norm = torch.nn.utils.clip_grad_norm_(disc.parameters(), clip)
    opt.step()
    with torch.no_grad():
        fake = gen(noise, labels)
    loss_fake = F.softplus(disc(fake, labels)).mean()
    opt.zero_grad(set_to_none=True)
    loss_fake.backward()
    opt.step()
    return {"loss_d": loss_real.item() + loss_fake.item(), "grad_norm_d": float(norm)}


def whole_loss_update(t: Trainable, real, y, noise, clip: float, per_tensor: bool) -> dict[str, float]:
    """One step on real + fake loss, gradient clipped per tensor (`authors`) or in total (`total-norm`)."""
    gen, disc, opt, labels = _d_setup(t, y)
    with torch.no_grad():
        fake = gen(noise, labels)
    loss = F.softplus(-disc(real, labels)).mean() + F.softplus(disc(fake, labels)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if per_tensor:
        norm = clip_per_tensor_(disc.parameters(), clip)
    else:
        norm = float(torch.nn.utils.clip_grad_norm_(disc.parameters(), clip))
    opt.step()
    return {"loss_d": loss.item(), "grad_norm_d": norm}


class RepFair:
    """RepFair-GAN: D sees real batches of one group at a time, in turn, with its gradient norm clipped at C,
    so that no group's real images dominate D's updates."""

    config_cls = RepFairConfig

    def create(self, task, config: RepFairConfig, device: torch.device) -> Trainable:
        if not clip_value(config) > 0:
            raise FairbenchError(f"repfair: clip_norm must be positive, got {config.clip_norm}")
        refuse_recipe_terms("repfair", config)
        return build(task, config, device)

    def step(
        self, trainable: Trainable, config: RepFairConfig, batches: BatchSource, batch_size: int, step: int
    ) -> dict[str, float]:
        real, y = batches.real(batch_size, group=step % batches.n_groups)
        noise = batches.noise(batch_size, config.latent_dim)
        clip = clip_value(config)
        if config.variant == "alg1":
            logs = alg1_update(trainable, real, y, noise, clip)
        else:
            logs = whole_loss_update(trainable, real, y, noise, clip, per_tensor=config.variant == "authors")
        logs.update(generator_update(trainable, y, batches.noise(batch_size, config.latent_dim)))
        return logs


METHODS.register("repfair", RepFair())
