"""Small conditional DCGAN networks shared by the reference methods (images with H and W divisible by 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fairbench.submission.generators import ARCHITECTURES


class ConditionalGenerator(nn.Module):
    """[z, one-hot class] -> linear -> two stride-2 transposed convs, linear output (clamped when sampled).

    Two measured choices on mnist-bicolor: a one-hot class input (a learned embedding as wide as z drowned
    out the latent: every sample of a class was the same image), and no final tanh (its saturated
    backgrounds locked every sample into the background of the initial guess, even the 10% minority one).
    """

    def __init__(
        self, latent_dim: int, num_classes: int, image_shape: list[int] | tuple[int, ...], width: int = 32,
        mapping_layers: int = 0,
    ) -> None:
        super().__init__()
        c, h, w = image_shape
        if h % 4 or w % 4:
            raise ValueError(f"image height and width must be divisible by 4, got {h}x{w}")
        if mapping_layers < 0:
            raise ValueError(f"mapping_layers must be >= 0, got {mapping_layers}")
        self.latent_dim, self.num_classes, self.image_shape = latent_dim, num_classes, (c, h, w)
        in_dim = latent_dim + num_classes
        # Optional MLP on [z, class] before the projection: a binary attribute (one background or the other)
        # needs a sharp switch in latent space, which one linear layer cannot draw.
        mapping: list[nn.Module] = []
        for _ in range(mapping_layers):
            mapping += [nn.Linear(in_dim, in_dim), nn.LeakyReLU(0.2)]
        self.mapping = nn.Sequential(*mapping)
        self.project = nn.Sequential(
            nn.Linear(in_dim, 2 * width * (h // 4) * (w // 4)),
            nn.Unflatten(1, (2 * width, h // 4, w // 4)),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
        )
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.ConvTranspose2d(width, c, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.num_classes > 0:
            if y is None:
                raise ValueError("this generator is conditional: pass class labels y")
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], dim=1)
        return self.upsample(self.project(self.mapping(z)))


class ProjectionDiscriminator(nn.Module):
    """Two stride-2 convs, then a linear score plus a class-projection term (Miyato & Koyama 2018)."""

    def __init__(self, num_classes: int, image_shape: list[int] | tuple[int, ...], width: int = 32) -> None:
        super().__init__()
        c, h, w = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        feat_dim = 2 * width * (h // 4) * (w // 4)
        self.score = nn.Linear(feat_dim, 1)
        self.embed = nn.Embedding(num_classes, feat_dim) if num_classes > 0 else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.score(h).squeeze(1)
        if self.embed is not None and y is not None:
            out = out + (self.embed(y) * h).sum(dim=1) / h.shape[1] ** 0.5
        return out


ARCHITECTURES.register("dcgan-conditional", ConditionalGenerator)
