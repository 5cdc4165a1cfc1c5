"""The small networks fairbench trains itself, and the registry of judge architectures a task may name.

No task, data or file handling here: these are the modules and how to run them, so the task validator can
check an architecture name without importing the rest of the subsystem.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fairbench.chunking import chunk_slices
from fairbench.registry import Registry


class JudgeNet(nn.Module):
    """Two conv blocks, pooled to 4x4, and a small MLP: a few hundred KB, fast on CPU."""

    def __init__(self, in_channels: int, n_groups: int, width: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(2 * width * 16, 64),
            nn.ReLU(),
            nn.Linear(64, n_groups),
        )

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.net(images_uint8.float() / 255.0)

    def activation_statistics(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """Per image, each channel's spatial mean and standard deviation after every convolutional block:
        the space in which `fairbench.scoring.recognisable` asks whether the judge has seen images like it."""
        return conv_statistics(self.net, images_uint8.float() / 255.0)


class JudgeNet3(nn.Module):
    """Three conv blocks (batch-normalised, each max-pooled by 2) and a small MLP, for natural 32x32 images
    (CIFAR-10: 77.6% after 8 epochs). ~156k parameters; the shipped CIFAR judge took 19 minutes on one
    heavily shared CPU thread. Batch norm runs on its stored statistics at inference, so each image's output
    does not depend on its batch."""

    def __init__(self, in_channels: int, n_groups: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU(), nn.MaxPool2d(2)]
            channels = out
        self.net = nn.Sequential(
            *layers, nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(channels * 16, 128), nn.ReLU(),
            nn.Linear(128, n_groups),
        )

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.net(images_uint8.float() / 255.0)

    def activation_statistics(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """As `JudgeNet.activation_statistics`."""
        return conv_statistics(self.net, images_uint8.float() / 255.0)


def conv_statistics(layers: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """N x (2 x channels of every block): the spatial mean and standard deviation (ddof 0) of each channel
    wherever a ReLU follows a convolution, up to the first flattening layer. Statistics of a classifier's
    feature maps tell images it was trained on from ones it was not (Sastry & Oore, ICML 2020), and at every
    scale: noise, stripes and blobs that a pooled top layer maps among real images stand out here."""
    parts = []
    for layer in layers:
        if x.dim() != 4:
            break
        x = layer(x)
        if isinstance(layer, nn.ReLU) and x.dim() == 4:
            parts += [x.mean(dim=(2, 3)), x.std(dim=(2, 3), correction=0)]
    return torch.cat(parts, dim=1)


@dataclass(frozen=True)
class JudgeArch:
    """A judge network and the recipe that trains it (so `fairbench judge train` reproduces it)."""

    build: Callable[[int, int, int], nn.Module]  # (in_channels, n_groups, width) -> network taking uint8 images
    lr: float = 1e-3  # Adam; constant, or the peak of a one-cycle schedule
    one_cycle: bool = False
    flip: bool = False  # augmentation: random horizontal flips (natural images; never for digits)
    shift: int = 0  # augmentation: random translation by up to this many pixels (edge padding)
    batch_size: int = 128

    def describe(self) -> dict:
        return {
            "optimizer": "adam", "lr": self.lr, "schedule": "one-cycle" if self.one_cycle else "constant",
            "batch_size": self.batch_size, "flip": self.flip, "shift_px": self.shift,
        }


DEFAULT_ARCH = "judge-cnn/1"
JUDGE_ARCHS: Registry[JudgeArch] = Registry("judge architecture")
JUDGE_ARCHS.register(DEFAULT_ARCH, JudgeArch(build=JudgeNet))
JUDGE_ARCHS.register(
    "judge-cnn3/1", JudgeArch(build=JudgeNet3, lr=3e-3, one_cycle=True, flip=True, shift=2)
)


def build_judge_net(arch: str | None, in_channels: int, n_groups: int, width: int = 16) -> nn.Module:
    return JUDGE_ARCHS.get(arch or DEFAULT_ARCH).build(in_channels, n_groups, width)


@torch.no_grad()
def predict_labels(net: nn.Module, images: torch.Tensor) -> np.ndarray:
    """Argmax label per uint8 N x C x H x W image, on the device of the net's weights, in fixed chunks
    (`fairbench.chunking`), so no batch-size setting can flip a near tie between two labels."""
    net.eval()
    weight = next(net.parameters(), None)
    device = images.device if weight is None else weight.device
    out = [net(images[part].to(device)).argmax(1).cpu() for part in chunk_slices(len(images))]
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


DOMAIN_ARCH = "domain-cnn/1"


class DomainNet(nn.Module):
    """Two conv blocks, max-pooled to 4x4, a 128-d embedding and a linear class head: ~72k parameters."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16, dim: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(4),  # 14x14 -> 4x4 for MNIST (average pooling here lost ~1% accuracy)
            nn.Flatten(),
        )
        self.embed = nn.Linear(2 * width * 16, dim)
        self.head = nn.Linear(dim, num_classes)

    def features(self, images_uint8: torch.Tensor) -> torch.Tensor:
        """The penultimate layer before its ReLU (see `fairbench.features`), in the weights' dtype."""
        return self.embed(self.body(images_uint8.to(self.embed.weight.dtype) / 255.0))

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.features(images_uint8)))


DOMAIN_CHUNK = 500  # images per domain-network call, always (see `run_in_fixed_chunks`)


@torch.no_grad()
def run_in_fixed_chunks(net: DomainNet, images: torch.Tensor, device, fn) -> list[torch.Tensor]:
    """`fn` (a method of `net`) over chunks of exactly `DOMAIN_CHUNK` images (the last padded with blank images).

    Float32 matrix kernels pick their blocking by batch size, which moved features by ~1e-6 between batch
    sizes; with every call the same shape, the batch size a caller asks for cannot change a feature, bit for bit.
    """
    net.to(device).eval()
    out = []
    for part in chunk_slices(len(images), DOMAIN_CHUNK):
        chunk = images[part]
        real = len(chunk)
        if real < DOMAIN_CHUNK:
            chunk = torch.cat([chunk, chunk.new_zeros((DOMAIN_CHUNK - real, *chunk.shape[1:]))])
        out.append(fn(chunk.to(device))[:real].cpu())
    return out
