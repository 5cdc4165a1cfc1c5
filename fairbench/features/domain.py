"""The domain networks as FID feature networks: the adapter over `fairbench.networks.domain`, registered by id.

A pinned network is registered under its id and loaded by (id, sha256); one trained on first use is loaded
with its task (`load_first_use_network`), since its file depends on the user's copy of the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from fairbench.errors import FairbenchError
from fairbench.features.base import FEATURE_NETWORKS, FeatureFactory, FeatureNetwork, check_batch_size, check_images
from fairbench.networks.archs import DOMAIN_CHUNK, DomainNet
from fairbench.networks.cards import FeatureCard
from fairbench.networks.domain import DOMAIN_RECIPES, domain_classes, domain_features, load_first_use, load_pinned

if TYPE_CHECKING:
    from fairbench.task_registry.spec import TaskSpec


class DomainNetwork(FeatureNetwork):
    """A domain network at inference, in float32 over fixed chunks of `DOMAIN_CHUNK` images (the last one
    padded with blank images). Float32 matrix kernels pick their blocking by batch size, which moved
    features by ~1e-6 between batch sizes; with every call the same shape, the batch size a caller asks for
    cannot change a feature, bit for bit, and float32 is about 3x faster than the float64 this ran in before
    (features within ~1e-6 relative of float64's, far below any FID difference worth reporting)."""

    def __init__(self, card: FeatureCard, net: DomainNet) -> None:
        self.card = card
        self.net = net.float().eval()
        self.compute = f"float32, chunks of {DOMAIN_CHUNK}"  # in reference-statistics cache keys
        self.id = card.id
        self.sha256 = card.sha256
        self.dim = card.dim
        self.resize_rule = card.resize_rule

    def _check(self, images: torch.Tensor, batch_size: int) -> None:
        check_images(images, f"feature network {self.id}")
        check_batch_size(batch_size)  # kept for the common contract; the chunk size is fixed (see the class)
        expected = (self.card.in_channels, *self.card.image_size)
        if tuple(images.shape[1:]) != expected:
            raise FairbenchError(
                f"feature network {self.id} takes {'x'.join(map(str, expected))} images (task {self.card.task}), "
                f"got {'x'.join(map(str, images.shape[1:]))}"
            )

    def extract(self, images: torch.Tensor, batch_size: int, device: torch.device | str) -> np.ndarray:
        self._check(images, batch_size)
        return domain_features(self.net, images, device)

    def classify(self, images: torch.Tensor, batch_size: int = 1000, device: torch.device | str = "cpu") -> np.ndarray:
        """Predicted class per image (how the card's accuracy is measured)."""
        self._check(images, batch_size)
        return domain_classes(self.net, images, device)


def load_domain_network(id: str, sha256: str, device: torch.device | str = "cpu") -> DomainNetwork:
    """Find `<id>.safetensors` (package, then $FAIRBENCH_HOME/features/), refuse it unless it hashes to `sha256`."""
    network = DomainNetwork(*load_pinned(id, sha256))
    network.net.to(device)
    return network


def load_first_use_network(task: TaskSpec, id: str, data_root: str | Path | None = None) -> DomainNetwork:
    """The domain network `id` trained on first use on this task's data (`fairbench.networks.prepare`)."""
    return DomainNetwork(*load_first_use(task, id, data_root))


def _domain_factory(id: str) -> FeatureFactory:
    return lambda sha256, device="cpu": load_domain_network(id, sha256, device)


for _id, _recipe in DOMAIN_RECIPES.items():
    if not _recipe.first_use:  # first-use networks are loaded with their task (load_first_use_network)
        FEATURE_NETWORKS.register(_id, _domain_factory(_id))
