"""Feature networks for the FID family, registered by name and loaded by (id, sha256).

A loaded network has `id`, `sha256` (of its weights file), `dim`, `resize_rule` (how images are prepared,
recorded in reference-statistics cache keys) and `extract(images, batch_size, device)`, which maps uint8
N x C x H x W images to an N x dim float64 array. Networks run in eval mode with no batch statistics, so
each image's features do not depend on the batch size: exactly for the domain networks (float32 over fixed
chunks, see `DomainNetwork`), up to float32 rounding of the matrix kernels for Inception.

- `domain-digits`, `domain-mnist`: small CNN digit classifiers trained on a task's TRAINING split for the
  class label (both background groups included), shipped inside the package as safetensors with a JSON card,
  exactly like the judges. The feature is the 128-d penultimate layer *before* its ReLU: a ReLU output has
  exact zeros and units that are dead on some inputs (a covariance with zero rows, far from Gaussian), while the
  pre-activation carries everything the classifier head sees, is dense, and is closer to the Gaussian that the
  Fréchet distance assumes.
- `inception`: computed by clean-fid 0.1.35 itself (`pip install 'fairbench[quality]'`): its `InceptionV3W`
  wrapper over the TorchScript `inception-2015-12-05.pt` (2048-d pool features), whose weights come only from
  the asset manifest (`fairbench.assets.require`, sha256-checked; clean-fid's own download into /tmp is never
  reached), and its `get_model_features` in the default "clean" mode with that wrapper as the extractor:
  every channel resized to 299x299 by PIL bicubic on float32 values (no quantisation), clipped to [0, 255],
  then (x - 128) / 128 into the network's `layers`. Grey images are replicated to RGB first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from fairbench import paths
from fairbench.chunking import chunk_slices
from fairbench.errors import FairbenchError
from fairbench.pinned import find_pinned
from fairbench.registry import Registry

if TYPE_CHECKING:
    from fairbench.tasks import TaskSpec

PACKAGE_DIR = Path(__file__).resolve().parent / "weights"
DOMAIN_ARCH = "domain-cnn/1"
INCEPTION_ASSET = "inception-2015-12-05"
INCEPTION_SIZE = 299
INCEPTION_DIM = 2048


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


def _check_images(images: torch.Tensor, what: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        dtype = getattr(images, "dtype", None)
        raise FairbenchError(f"{what} takes uint8 N x C x H x W images, got {dtype} {shape}")


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise FairbenchError(f"batch size must be positive, got {batch_size}")


def _pinned_asset(asset_id: str, sha256: str) -> tuple[Path, str]:
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


# --------------------------------------------------------------------------------------- domain networks


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
        """The penultimate layer before its ReLU (see the module docstring for why), in the weights' dtype."""
        return self.embed(self.body(images_uint8.to(self.embed.weight.dtype) / 255.0))

    def forward(self, images_uint8: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.features(images_uint8)))


@dataclass(frozen=True)
class FeatureCard:
    """What ships beside a domain network's weights: provenance, input contract, held-out accuracy."""

    id: str
    sha256: str
    task: str
    arch: str
    in_channels: int
    image_size: list[int]  # [H, W] the network accepts, as-is
    num_classes: int
    width: int
    dim: int
    resize_rule: str
    accuracy: float  # class accuracy on the task's test split
    n_test: int
    epochs: int
    seed: int
    training: dict[str, Any]  # the rest of the recipe: optimiser, schedule, batch size, augmentation
    # Where the weights were trained (fairbench.reproduction.training_machine): float kernels, hence the exact
    # bytes, depend on them. Cards written before these fields lack them (None).
    torch_version: str | None = None
    threads: int | None = None
    cpu: str | None = None
    first_use_key: str | None = None  # trained on first use: what it was trained from (fairbench.first_use)


@dataclass(frozen=True)
class DomainRecipe:
    """How a shipped domain network is reproduced: which task's training split, for how long."""

    task: str
    epochs: int
    width: int = 16
    dim: int = 128
    batch_size: int = 64
    lr: float = 1e-3  # peak of a one-cycle schedule
    shift: int = 0  # augmentation: random translation by up to this many pixels (edge padding)
    split: str = "train"  # the task split it learns the class label from (cifar10-lt: the balanced "judge" split)
    flip: bool = False  # augmentation: random horizontal flips (natural images only)
    first_use: bool = False  # trained on the user's data when first needed (fairbench.first_use), never shipped


DOMAIN_RECIPES: dict[str, DomainRecipe] = {
    "domain-digits": DomainRecipe(task="digits-bicolor", epochs=30, lr=3e-3, shift=1),
    "domain-mnist": DomainRecipe(task="mnist-bicolor", epochs=2, lr=3e-3, batch_size=64, shift=1),
    # CIFAR-10 classes, learnt from the balanced training images (the long-tailed split would teach the tail poorly).
    "domain-cifar10": DomainRecipe(
        task="cifar10-lt", epochs=8, width=16, lr=3e-3, batch_size=128, shift=2, split="judge", flip=True
    ),
    # SVHN digits (both shading groups), on the methods' training split of the user's copy.
    "domain-svhn": DomainRecipe(task="svhn-shaded", epochs=3, width=32, lr=3e-3, batch_size=128, shift=2, first_use=True),
    # Sees faces: a race classifier on utkface-race's training split (class label = race there).
    "domain-utkface": DomainRecipe(task="utkface-race", epochs=15, lr=3e-3, batch_size=64, shift=1),
}


def _domain_resize_rule(in_channels: int, height: int, width: int) -> str:
    return f"none: uint8 {in_channels}x{height}x{width} exactly as the task defines it, scaled by 1/255"


DOMAIN_CHUNK = 500  # images per domain-network call, always (see DomainNetwork)


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

    def _batches(self, images: torch.Tensor, batch_size: int, device, fn) -> list[torch.Tensor]:
        _check_images(images, f"feature network {self.id}")
        _check_batch_size(batch_size)  # kept for the common contract; the chunk size is fixed (see the class)
        expected = (self.card.in_channels, *self.card.image_size)
        if tuple(images.shape[1:]) != expected:
            raise FairbenchError(
                f"feature network {self.id} takes {'x'.join(map(str, expected))} images (task {self.card.task}), "
                f"got {'x'.join(map(str, images.shape[1:]))}"
            )
        self.net.to(device).eval()
        out = []
        with torch.no_grad():
            for part in chunk_slices(len(images), DOMAIN_CHUNK):
                chunk = images[part]
                real = len(chunk)
                if real < DOMAIN_CHUNK:
                    chunk = torch.cat([chunk, chunk.new_zeros((DOMAIN_CHUNK - real, *chunk.shape[1:]))])
                out.append(fn(chunk.to(device))[:real].cpu())
        return out

    def extract(self, images: torch.Tensor, batch_size: int, device: torch.device | str) -> np.ndarray:
        out = self._batches(images, batch_size, device, self.net.features)
        if not out:
            return np.zeros((0, self.dim), dtype=np.float64)
        return torch.cat(out).numpy().astype(np.float64)

    def classify(self, images: torch.Tensor, batch_size: int = 1000, device: torch.device | str = "cpu") -> np.ndarray:
        """Predicted class per image (how the card's accuracy is measured)."""
        out = self._batches(images, batch_size, device, lambda x: self.net(x).argmax(1))
        return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def _search_dirs() -> list[Path]:
    return [PACKAGE_DIR, paths.fairbench_home() / "features"]


def load_domain_network(id: str, sha256: str, device: torch.device | str = "cpu") -> DomainNetwork:
    """Find `<id>.safetensors` (package, then $FAIRBENCH_HOME/features/), refuse it unless it hashes to `sha256`."""
    weights, raw = find_pinned(
        "feature network", id, sha256, _search_dirs(), "fairbench.features.train_domain_network"
    )
    network = _domain_from(weights, raw)
    if network.card.id != id or network.card.sha256 != sha256:
        card = network.card
        raise FairbenchError(
            f"{weights.with_suffix('.json')}: card (id {card.id}, arch {card.arch}) does not describe {weights.name}"
        )
    network.net.to(device)
    return network


def _recipe_dict(network_id: str, recipe: DomainRecipe, epochs: int, seed: int) -> dict[str, Any]:
    return {"kind": "features", "id": network_id, **asdict(recipe), "epochs": epochs, "seed": seed}


def first_use_dir() -> Path:
    return paths.fairbench_home() / "features"


def load_first_use_network(task: TaskSpec, id: str, data_root: str | Path | None = None) -> DomainNetwork:
    """The domain network `id` trained on first use on this task's data (see `ensure_feature_network`)."""
    from fairbench import first_use

    recipe = DOMAIN_RECIPES.get(id)
    if recipe is None or not recipe.first_use:
        raise FairbenchError(f"feature network {id!r} is not trained on first use")
    root = None if data_root is None else Path(data_root)
    weights, raw = first_use.find_cached(
        "feature network", id, first_use_dir(), task, root, f"`fairbench features train --task {task.id}`",
        recipe=_recipe_dict(id, recipe, recipe.epochs, 0),
    )
    return _domain_from(weights, raw)


def ensure_feature_network(task: TaskSpec, data_root: str | Path | None = None, progress=None, note=None) -> None:
    """Train the task's trained-on-first-use domain network into `$FAIRBENCH_HOME/features/` when none matches
    this data yet (`note(text)` says so first); nothing for a pinned network."""
    from fairbench import first_use

    ref = task.quality.feature_network if task.quality is not None else None
    if ref is None or not ref.trained_on_first_use:
        return
    recipe = DOMAIN_RECIPES.get(ref.id)
    if recipe is None or not recipe.first_use:
        raise FairbenchError(f"task {task.id}: feature network {ref.id!r} has no first-use recipe")
    root = None if data_root is None else Path(data_root)
    if first_use.is_cached(ref.id, first_use_dir(), task, root, _recipe_dict(ref.id, recipe, recipe.epochs, 0)):
        return
    if note is not None:
        note(
            f"feature network {ref.id} is trained on first use: training it on your data now (seeded; cached in "
            f"{first_use_dir()}; results record its sha256)"
        )
    train_domain_network(task, first_use_dir(), root, network_id=ref.id, progress=progress)


def _domain_from(weights: Path, raw: dict[str, Any]) -> DomainNetwork:
    card_path = weights.with_suffix(".json")
    try:
        card = FeatureCard(**raw)
    except TypeError as exc:
        raise FairbenchError(f"{card_path}: feature network card invalid ({exc})") from None
    if card.arch != DOMAIN_ARCH:
        raise FairbenchError(f"{card_path}: card (arch {card.arch}) does not describe {weights.name}")
    net = DomainNet(card.in_channels, card.num_classes, card.width, card.dim)
    try:
        net.load_state_dict(load_file(str(weights)))
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise FairbenchError(f"{weights}: cannot load feature network weights ({exc})") from None
    return DomainNetwork(card, net)


def _domain_factory(id: str) -> FeatureFactory:
    return lambda sha256, device="cpu": load_domain_network(id, sha256, device)


for _id, _recipe in DOMAIN_RECIPES.items():
    if not _recipe.first_use:  # first-use networks are loaded with their task (load_first_use_network)
        FEATURE_NETWORKS.register(_id, _domain_factory(_id))


# Training and the other networks live in their own modules, imported here so that every caller finds the
# whole API on `fairbench.features` and every network registered: `inception` (clean-fid), `clip`
# (open_clip, pickle-free TorchScript reading) and `dinov2` (its own ViT over Meta's released state dicts).
from fairbench.features import clip  # noqa: E402,F401  (registers "clip")
from fairbench.features import dinov2  # noqa: E402,F401  (registers "dinov2", "dinov2-vits14", ...)
from fairbench.features.domain_training import random_shift, train_domain_network  # noqa: E402,F401
from fairbench.features.inception import inception_inputs, load_inception  # noqa: E402,F401  (registers "inception")
