"""The standard conditional DCGAN (the default architecture of the reference GANs), its group-conditioned
twin for `groupcond`, and a discriminator with an optional minibatch standard-deviation channel.

G: [z, one-hot class] -> linear -> (2w) x H/4 x W/4, BN, ReLU -> x2 transposed conv to w, BN, ReLU -> x2
transposed conv to C channels, tanh. D: conv w -> conv 2w (stride 2, LeakyReLU 0.2, no BN) -> linear score
plus a class-projection term. Any H, W divisible by 4, 1 or 3 channels, num_classes 0 for unconditional
tasks. Measured on mnist-bicolor (issue 10): it draws much better digits than `dcgan-conditional`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from fairbench.submission.generators import ARCHITECTURES


def _check_shape(image_shape) -> tuple[int, int, int]:
    c, h, w = (int(v) for v in image_shape)
    if h % 4 or w % 4:
        raise ValueError(f"image height and width must be divisible by 4, got {h}x{w}")
    return c, h, w


class CDCGANGenerator(nn.Module):
    """forward(z, y=None) -> N x C x H x W in [-1, 1] (tanh)."""

    def __init__(
        self, latent_dim: int, num_classes: int, image_shape: list[int] | tuple[int, ...], width: int = 64,
        extra_dim: int = 0,
    ) -> None:
        super().__init__()
        c, h, w = _check_shape(image_shape)
        self.latent_dim, self.num_classes, self.image_shape = latent_dim, num_classes, (c, h, w)
        self.project = nn.Sequential(
            nn.Linear(latent_dim + num_classes + extra_dim, 2 * width * (h // 4) * (w // 4)),
            nn.Unflatten(1, (2 * width, h // 4, w // 4)),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, c, 4, 2, 1),
            nn.Tanh(),
        )

    def _inputs(self, z: torch.Tensor, y: torch.Tensor | None) -> list[torch.Tensor]:
        if self.num_classes > 0:
            if y is None:
                raise ValueError("this generator is conditional: pass class labels y")
            return [z, F.one_hot(y, self.num_classes).to(z.dtype)]
        return [z]

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.upsample(self.project(torch.cat(self._inputs(z, y), dim=1)))


def group_of_latent(z0: torch.Tensor, n_groups: int) -> torch.Tensor:
    """g = floor(Phi(z0) * |S|): uniform over groups when z0 ~ N(0, 1), fixed by the harness's seeded z."""
    u = 0.5 * (1 + torch.erf(z0.double() / math.sqrt(2)))
    return (u * n_groups).floor().clamp_(0, n_groups - 1).long()


def latent_for_group(groups: torch.Tensor, n_groups: int, u: torch.Tensor) -> torch.Tensor:
    """z0 ~ N(0, 1) conditioned on group_of_latent(z0) == g, from u ~ U(0, 1) (inverse CDF in g's slice)."""
    q = ((groups.double() + u.double()) / n_groups).clamp(1e-12, 1 - 1e-12)
    return (math.sqrt(2) * torch.erfinv(2 * q - 1)).to(u.dtype if u.is_floating_point() else torch.float32)


class GroupConditionalGenerator(CDCGANGenerator):
    """The cDCGAN also conditioned on the sensitive group, fair by construction when sampled.

    The scoring contract is forward(z, y=None) with z from the harness's seeded sampler, so the group is read
    off the first latent coordinate: g = floor(Phi(z[:, 0]) * n_groups), uniform over groups because
    z ~ N(0, 1). That coordinate is consumed (the network sees z[:, 1:] and one-hot g), so training can pass
    the true group of each real image with `forward(z, y, groups=g)` and sampling stays the same model.
    """

    def __init__(
        self, latent_dim: int, num_classes: int, image_shape: list[int] | tuple[int, ...], width: int = 64,
        n_groups: int = 2,
    ) -> None:
        if n_groups < 2 or latent_dim < 2:
            raise ValueError("groupcond needs at least 2 groups and latent_dim >= 2")
        super().__init__(latent_dim - 1, num_classes, image_shape, width, extra_dim=n_groups)
        self.latent_dim, self.n_groups = latent_dim, n_groups  # the sampler draws latent_dim coordinates

    def forward(
        self, z: torch.Tensor, y: torch.Tensor | None = None, groups: torch.Tensor | None = None
    ) -> torch.Tensor:
        if groups is None:
            groups = group_of_latent(z[:, 0], self.n_groups).to(z.device)
        parts = self._inputs(z[:, 1:], y) + [F.one_hot(groups, self.n_groups).to(z.dtype)]
        return self.upsample(self.project(torch.cat(parts, dim=1)))


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append one channel: the feature std within groups of `group_size` samples, averaged (Karras et al.).

    A batch-level signal: a D that sees it can tell a batch with one background from a mixed one. The group
    is the largest size <= group_size dividing the batch, so any batch size works.
    """
    n, c, h, w = x.shape
    g = min(group_size, n)
    while n % g:
        g -= 1
    y = x.reshape(g, n // g, c, h, w)
    std = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # one value per group slot
    return torch.cat([x, std.repeat(g).reshape(n, 1, 1, 1).expand(n, 1, h, w)], dim=1)


class CDCGANDiscriminator(nn.Module):
    """conv w -> conv 2w (LeakyReLU 0.2, no BN) [-> minibatch-std channel] -> linear + projection head."""

    def __init__(
        self, num_classes: int, image_shape: list[int] | tuple[int, ...], width: int = 64,
        minibatch_std: bool = False, group_size: int = 4,
    ) -> None:
        super().__init__()
        c, h, w = _check_shape(image_shape)
        self.minibatch_std, self.group_size = minibatch_std, group_size
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
        )
        channels = 2 * width + (1 if minibatch_std else 0)
        feat_dim = channels * (h // 4) * (w // 4)
        self.score = nn.Linear(feat_dim, 1)
        self.embed = nn.Embedding(num_classes, feat_dim) if num_classes > 0 else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None, with_features: bool = False):
        """Scores, N; with `with_features`, also the per-image conv features (N x 2w*H/4*W/4, before the
        minibatch-std channel), which feature matching compares between real and generated batches."""
        feats = self.features(x)
        h = minibatch_stddev(feats, self.group_size) if self.minibatch_std else feats
        h = h.flatten(1)
        out = self.score(h).squeeze(1)
        if self.embed is not None and y is not None:
            out = out + (self.embed(y) * h).sum(dim=1) / h.shape[1] ** 0.5
        return (out, feats.flatten(1)) if with_features else out


ARCHITECTURES.register("cdcgan", CDCGANGenerator)
ARCHITECTURES.register("cdcgan-groupcond", GroupConditionalGenerator)
