"""The data-source contract: a named loader of one dataset's parts in its standard on-disk layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from fairbench.registry import Registry


@dataclass(frozen=True)
class RawPart:
    images: np.ndarray  # uint8, N x C x H x W
    labels: np.ndarray  # int64 class labels
    info: dict[str, Any] = field(default_factory=dict)  # what the source skipped or chose (counts, folder)


@dataclass(frozen=True)
class DataIdentity:
    """Which bytes a part came from. Two copies of a dataset in different formats (CIFAR-10's original pickles
    and a lossy JPEG copy) give different pixels, so results must record this and never be compared across it.

    `sha256` is the content hash of the decoded part: sha256 over its uint8 images (N x C x H x W, C order) then
    its int64 labels, so the same pixels hash the same whatever file format carried them.
    """

    source: str
    format: str
    sha256: str


class DataSource(Protocol):
    def load(self, part: str, root: Path) -> RawPart: ...


SOURCES: Registry[DataSource] = Registry("data source")


def content_sha256(images: np.ndarray, labels: np.ndarray) -> str:
    import hashlib

    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images, dtype=np.uint8).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def resize_uint8(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of uint8 NCHW images, rounded back to uint8."""
    if images.shape[2:] == (height, width):
        return images
    tensor = torch.from_numpy(images).float()
    out = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return out.round().clamp(0, 255).to(torch.uint8).numpy()
