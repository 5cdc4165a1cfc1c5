"""What the FID family needs from a feature network, the registry of networks by id, and the checks every
network shares (see `fairbench.features` for the networks themselves)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairbench.errors import FairbenchError
from fairbench.registry import Registry


class FeatureNetwork:
    """What the FID family needs from a feature network."""

    id: str
    sha256: str
    dim: int
    resize_rule: str

    def extract(self, images: torch.Tensor, batch_size: int, device: torch.device | str) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """The fields a result records about the network."""
        return {"id": self.id, "sha256": self.sha256, "dim": self.dim, "resize_rule": self.resize_rule}


FeatureFactory = Callable[[str, "torch.device | str"], FeatureNetwork]
FEATURE_NETWORKS: Registry[FeatureFactory] = Registry("feature network")


def load_feature_network(id: str, sha256: str, device: torch.device | str = "cpu") -> FeatureNetwork:
    """The network `id` whose weights hash to `sha256`; any other file is refused with a FairbenchError."""
    return FEATURE_NETWORKS.get(id)(sha256, device)


def check_images(images: torch.Tensor, what: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        dtype = getattr(images, "dtype", None)
        raise FairbenchError(f"{what} takes uint8 N x C x H x W images, got {dtype} {shape}")


def check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise FairbenchError(f"batch size must be positive, got {batch_size}")


def pinned_asset(asset_id: str, sha256: str) -> tuple[Path, str]:
    """A downloadable network's weights (verified against the asset manifest) and their sha256, refused unless
    that is the task's pin: the manifest says which file it is, the pin which network a score was made with."""
    from fairbench import atomic
    from fairbench.assets import require  # late: only downloadable networks need the asset machinery

    path = Path(require(asset_id))  # a verified local file, or a FairbenchError saying where to put it
    digest = atomic.sha256_file(path)
    if digest != sha256:
        raise FairbenchError(
            f"{path}: sha256 {digest[:12]}… does not match the pinned feature network {sha256[:12]}…; "
            "refusing to compute FID with a different network"
        )
    return path, digest
