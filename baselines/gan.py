"""What the reference GANs share: configuration, network construction and the non-saturating GAN updates.

Loss choice: the non-saturating loss of Goodfellow et al. (D: softplus(-D(x)) + softplus(D(G(z))),
G: softplus(-D(G(z)))), as in the RepFair-GAN paper's DCGAN experiments.

Architectures (`architecture`): `cdcgan` (default; baselines/cdcgan.py, the standard conditional DCGAN) and
`dcgan-conditional` (the project's first nets, baselines/nets.py; kept so old runs can be repeated and old
checkpoints still score).
"""

from __future__ import annotations

import copy
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
    architecture: Literal["cdcgan", "dcgan-conditional"] = "cdcgan"  # the network pair (baselines/nets.py)
    latent_dim: int = 100  # length of G's noise input
    width: int = 64  # G's last hidden and D's first conv channels (the others are 2 x width)
    mapping_layers: int = 0  # MLP layers mapping the noise before G (dcgan-conditional only)
    minibatch_std: bool = False  # cdcgan only: D sees a minibatch standard-deviation channel
    mbstd_group: int = 4  # samples per minibatch-std group (capped at the batch; Karras et al. use 4)
    # Remedies for mode dropping (issue 43), all off by default; see recipe_terms() for what each adds.
    feature_matching: float = 0.0  # weight of Salimans et al.'s feature matching in G's loss
    mode_seeking: float = 0.0  # weight of Mao et al.'s mode-seeking term in G's loss
    r1_gamma: float = 0.0  # R1 penalty on D's gradient at real images (Mescheder et al. 2018)
    ema_decay: float = 0.0  # > 0: the scored generator is an exponential moving average of G's weights
    optimizer_d: Literal["adam", "sgd"] = "adam"  # D's optimiser (G always uses Adam)
    lr_g: float = 2e-4  # G's learning rate
    lr_d: float = 2e-4  # D's learning rate
    beta1: float = 0.5  # Adam's first-moment decay
    beta2: float = 0.999  # Adam's second-moment decay


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
    if config.mbstd_group < 2:
        problems.append(f"mbstd_group must be >= 2, got {config.mbstd_group}")
    if config.feature_matching and config.architecture != "cdcgan":
        problems.append("feature_matching needs architecture=cdcgan")
    problems += [f"{name} must be >= 0, got {getattr(config, name)}"
                 for name in ("feature_matching", "mode_seeking", "r1_gamma") if not getattr(config, name) >= 0]
    if not 0 <= config.ema_decay < 1:
        problems.append(f"ema_decay must be in [0, 1), got {config.ema_decay}")
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
        disc = CDCGANDiscriminator(d_labels, shape, config.width, minibatch_std=config.minibatch_std,
                                   group_size=config.mbstd_group)
    else:
        disc = ProjectionDiscriminator(classes, shape, config.width)
    gen, disc = gen.to(device), disc.to(device)
    modules = {"generator": gen, "discriminator": disc}
    if config.ema_decay > 0:  # scored and saved in the checkpoint instead of the raw generator
        modules[EMA] = copy.deepcopy(gen).requires_grad_(False)
    return Trainable(
        modules=modules,
        optimizers=_optimizers(gen, disc, config),
        generator=EMA if config.ema_decay > 0 else "generator",
        arch=arch,
        arch_kwargs=kwargs,
    )


EMA = "generator_ema"


@torch.no_grad()
def update_ema(t: Trainable, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * G for parameters; buffers (BatchNorm statistics) are copied."""
    ema, gen = t.modules[EMA], t.modules["generator"]
    for target, source in zip(ema.parameters(), gen.parameters()):
        target.lerp_(source, 1 - decay)
    for target, source in zip(ema.buffers(), gen.buffers()):
        target.copy_(source)


RECIPE_TERMS = ("feature_matching", "mode_seeking", "r1_gamma", "ema_decay")


def refuse_recipe_terms(method: str, config: GANConfig) -> None:
    """Methods with their own updates (repfair, groupcond) do not apply these yet: say so, never ignore."""
    used = [name for name in RECIPE_TERMS if getattr(config, name)]
    if used:
        raise FairbenchError(f"{method} does not apply {', '.join(used)} yet (vanilla, mbstd and rebalance's base do)")


def _labels(gen, y: torch.Tensor) -> torch.Tensor | None:
    return y if gen.num_classes > 0 else None


def r1_penalty(disc, real: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(D's scores on `real`, mean squared norm of their gradient w.r.t. the images), for gamma/2 * R1."""
    real = real.detach().requires_grad_(True)
    scores = disc(real, labels)
    (grad,) = torch.autograd.grad(scores.sum(), real, create_graph=True)
    return scores, grad.pow(2).flatten(1).sum(1).mean()


def discriminator_update(
    t: Trainable, real: torch.Tensor, y: torch.Tensor, noise: torch.Tensor, clip_norm: float | None,
    r1_gamma: float = 0.0,
) -> dict[str, float]:
    """One D step on a real batch and as many fakes; optionally clip D's total gradient norm to clip_norm and
    add the R1 penalty r1_gamma / 2 * E||grad D(x)||^2 on the real batch."""
    gen, disc, opt = t.modules["generator"], t.modules["discriminator"], t.optimizers["discriminator"]
    labels = _labels(gen, y)
    with torch.no_grad():
        fake = gen(noise, labels)
    logs = {}
    if r1_gamma > 0:
        real_scores, r1 = r1_penalty(disc, real, labels)
        logs["r1"] = r1.item()
    else:
        real_scores, r1 = disc(real, labels), 0.0
    loss = F.softplus(-real_scores).mean() + F.softplus(disc(fake, labels)).mean()
    opt.zero_grad(set_to_none=True)
    (loss + 0.5 * r1_gamma * r1).backward()
    logs["loss_d"] = loss.item()
    if clip_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(disc.parameters(), clip_norm)
        logs["grad_norm_d"] = float(norm)
    opt.step()
    return logs


def generator_update(
    t: Trainable, y: torch.Tensor, noise: torch.Tensor, config: GANConfig | None = None,
    real: torch.Tensor | None = None,
) -> dict[str, float]:
    """One G step on the non-saturating loss, plus the recipe's terms (`recipe_terms`) and its EMA update."""
    gen, disc, opt = t.modules["generator"], t.modules["discriminator"], t.optimizers["generator"]
    labels = _labels(gen, y)
    fake = gen(noise, labels)
    wants_features = config is not None and config.feature_matching > 0
    scores = disc(fake, labels, with_features=True) if wants_features else disc(fake, labels)
    fake_features = None
    if wants_features:
        scores, fake_features = scores
    loss = F.softplus(-scores).mean()
    logs = {"loss_g": loss.item()}
    if config is not None:
        extra, extra_logs = recipe_terms(disc, config, noise, fake, fake_features, real, labels)
        loss = loss + extra
        logs.update(extra_logs)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if config is not None and config.ema_decay > 0:
        update_ema(t, config.ema_decay)
    return logs


def recipe_terms(disc, config: GANConfig, noise, fake, fake_features, real, labels) -> tuple[torch.Tensor, dict]:
    """G's extra loss terms against mode dropping, each a batch-level signal a per-image loss cannot give.

    - feature matching (Salimans et al. 2016): the squared distance between the batch means of D's conv
      features on real and generated images, so a batch missing a mode that real batches show is penalised
      in proportion to how often real batches show it;
    - mode seeking (Mao et al. 2019): 1 / (mean |G(z1) - G(z2)| / mean |z1 - z2| + eps) over the batch's two
      halves, which rewards different outputs for different latents.
    """
    extra, logs = fake.new_zeros(()), {}
    if config.feature_matching > 0:
        if real is None:
            raise ValueError("feature matching needs the real batch")
        with torch.no_grad():
            _, real_features = disc(real, labels, with_features=True)
        fm = (fake_features.mean(0) - real_features.mean(0)).pow(2).mean()
        extra = extra + config.feature_matching * fm
        logs["fm"] = fm.item()
    if config.mode_seeking > 0:
        half = len(fake) // 2
        ratio = (fake[:half] - fake[half:2 * half]).abs().mean() / (noise[:half] - noise[half:2 * half]).abs().mean()
        extra = extra + config.mode_seeking / (ratio + 1e-5)
        logs["ms"] = ratio.item()
    return extra, logs


def gan_step(
    t: Trainable, batches: BatchSource, batch_size: int, config: GANConfig, group: int | None, clip: float | None
) -> dict[str, float]:
    real, y = batches.real(batch_size, group=group)
    logs = discriminator_update(t, real, y, batches.noise(batch_size, config.latent_dim), clip, config.r1_gamma)
    logs.update(generator_update(t, y, batches.noise(batch_size, config.latent_dim), config, real))
    return logs


def config_dict(config: GANConfig) -> dict:
    return asdict(config)
