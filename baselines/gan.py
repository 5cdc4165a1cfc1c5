"""What the reference GANs share: configuration, network construction and the non-saturating GAN updates.

Loss choice: the non-saturating loss of Goodfellow et al. (D: softplus(-D(x)) + softplus(D(G(z))),
G: softplus(-D(G(z)))), as in the RepFair-GAN paper's DCGAN experiments.

Architectures (`architecture`): `cdcgan` (default; baselines/cdcgan.py, the standard conditional DCGAN) and
`dcgan-conditional` (the project's first nets, baselines/nets.py; kept so old runs can be repeated and old
checkpoints still score).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from baselines.cdcgan import CDCGANDiscriminator, CDCGANGenerator, GroupConditionalGenerator
from baselines.nets import ConditionalGenerator, ProjectionDiscriminator
from fairbench.errors import FairbenchError
from fairbench.methods import BatchSource, Trainable


@dataclass(frozen=True)
class GANConfig:
    architecture: Literal["cdcgan", "dcgan-conditional"] = "cdcgan"
    latent_dim: int = 100
    width: int = 64  # G's last hidden and D's first conv channels (the others are 2 x width)
    mapping_layers: int = 0  # dcgan-conditional only
    minibatch_std: bool = False  # cdcgan only: D sees a minibatch standard-deviation channel (group 4)
    optimizer_d: Literal["adam", "sgd"] = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999


def check_config(config: GANConfig) -> None:
    """A bad `--set` value is the user's mistake: one clear line, never a traceback from deep in torch."""
    problems = [
        f"{name} must be a positive integer, got {getattr(config, name)}"
        for name in ("latent_dim", "width") if getattr(config, name) < 1
    ]
    if config.mapping_layers < 0:
        problems.append(f"mapping_layers must be >= 0, got {config.mapping_layers}")
    if config.mapping_layers and config.architecture != "dcgan-conditional":
        problems.append("mapping_layers needs architecture=dcgan-conditional")
    if config.minibatch_std and config.architecture != "cdcgan":
        problems.append("minibatch_std needs architecture=cdcgan")
    problems += [f"{name} must be positive, got {getattr(config, name)}" for name in ("lr_g", "lr_d")
                 if not getattr(config, name) > 0]
    problems += [f"{name} must be in [0, 1), got {getattr(config, name)}" for name in ("beta1", "beta2")
                 if not 0 <= getattr(config, name) < 1]
    if problems:
        raise FairbenchError("; ".join(problems))


def _optimizers(gen, disc, config: GANConfig) -> dict[str, torch.optim.Optimizer]:
    betas = (config.beta1, config.beta2)
    if config.optimizer_d == "sgd":
        opt_d: torch.optim.Optimizer = torch.optim.SGD(disc.parameters(), lr=config.lr_d)
    else:
        opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr_d, betas=betas)
    return {"generator": torch.optim.Adam(gen.parameters(), lr=config.lr_g, betas=betas), "discriminator": opt_d}


def build(task, config: GANConfig, device: torch.device, n_groups: int = 0) -> Trainable:
    """The method's networks. n_groups > 0 builds `groupcond`'s group-conditioned G and a D that projects
    on the joint (class, group) label."""
    check_config(config)
    classes = task.num_classes if task.conditional else 0
    shape = list(task.image_shape)
    kwargs = {"latent_dim": config.latent_dim, "num_classes": classes, "image_shape": shape, "width": config.width}
    d_labels = max(classes, 1) * n_groups if n_groups else classes
    if n_groups:
        if config.architecture != "cdcgan":
            raise FairbenchError("groupcond needs architecture=cdcgan")
        kwargs["n_groups"] = n_groups
        arch, gen = "cdcgan-groupcond", GroupConditionalGenerator(**kwargs)
    elif config.architecture == "cdcgan":
        arch, gen = "cdcgan", CDCGANGenerator(**kwargs)
    else:
        kwargs["mapping_layers"] = config.mapping_layers
        arch, gen = "dcgan-conditional", ConditionalGenerator(**kwargs)
    if config.architecture == "cdcgan":
        disc = CDCGANDiscriminator(d_labels, shape, config.width, minibatch_std=config.minibatch_std)
    else:
        disc = ProjectionDiscriminator(classes, shape, config.width)
    gen, disc = gen.to(device), disc.to(device)
    return Trainable(
        modules={"generator": gen, "discriminator": disc},
        optimizers=_optimizers(gen, disc, config),
        generator="generator",
        arch=arch,
        arch_kwargs=kwargs,
    )


def _labels(gen, y: torch.Tensor) -> torch.Tensor | None:
    return y if gen.num_classes > 0 else None


def discriminator_update(
    t: Trainable, real: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, clip_norm: float | None
) -> dict[str, float]:
    """One D step on a real batch and as many fakes; optionally clip D's total gradient norm to clip_norm."""
    gen, disc, opt = t.modules["generator"], t.modules["discriminator"], t.optimizers["discriminator"]
    labels = _labels(gen, y)
    with torch.no_grad():
        fake = gen(noise, labels)
    loss = F.softplus(-disc(real, labels)).mean() + F.softplus(disc(fake, labels)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    logs = {"loss_d": loss.item()}
    if clip_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(disc.parameters(), clip_norm)
        logs["grad_norm_d"] = float(norm)
    opt.step()
    return logs


def generator_update(t: Trainable, y: torch.Tensor, noise: torch.Tensor) -> dict[str, float]:
    gen, disc, opt = t.modules["generator"], t.modules["discriminator"], t.optimizers["generator"]
    labels = _labels(gen, y)
    loss = F.softplus(-disc(gen(noise, labels), labels)).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"loss_g": loss.item()}


def gan_step(
    t: Trainable, batches: BatchSource, batch_size: int, config: GANConfig, group: int | None, clip: float | None
) -> dict[str, float]:
    real, y = batches.real(batch_size, group=group)
    logs = discriminator_update(t, real, y, batches.noise(batch_size, config.latent_dim), clip)
    logs.update(generator_update(t, y, batches.noise(batch_size, config.latent_dim)))
    return logs


def config_dict(config: GANConfig) -> dict:
    return asdict(config)
