"""The domain feature network kind: small CNN classifiers trained on a task's images for the class label, whose
128-d penultimate layer (before its ReLU) is the space the FID family measures in (see `fairbench.features`).

Pinned ones ship inside the package (`fairbench/features/weights`) as safetensors with a JSON card, exactly
like the judges; SVHN's is trained on first use on the user's copy (`fairbench.networks.store`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fairbench import atomic, data
from fairbench.errors import FairbenchError
from fairbench.networks.archs import DOMAIN_ARCH, DomainNet, run_in_fixed_chunks
from fairbench.networks.cards import FeatureCard
from fairbench.networks.store import find_cached, find_pinned, first_use_key, home_dir
from fairbench.networks.training import Fit, fit, torch_threads, training_machine

if TYPE_CHECKING:
    from fairbench.task_registry.spec import TaskSpec

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "features" / "weights"
HOME = "features"  # $FAIRBENCH_HOME/features: first-use networks, and users' own copies of pinned ones


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
    first_use: bool = False  # trained on the user's data when first needed (fairbench.networks.store), never shipped


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


def recipe_dict(network_id: str, recipe: DomainRecipe, epochs: int, seed: int) -> dict[str, Any]:
    """What a first-use network is trained from, as its `first_use_key` hashes it."""
    return {"kind": "features", "id": network_id, **asdict(recipe), "epochs": epochs, "seed": seed}


def first_use_recipe(network_id: str) -> DomainRecipe | None:
    """The recipe of a network trained on first use; None for any other id."""
    recipe = DOMAIN_RECIPES.get(network_id)
    return recipe if recipe is not None and recipe.first_use else None


def resize_rule(in_channels: int, height: int, width: int) -> str:
    return f"none: uint8 {in_channels}x{height}x{width} exactly as the task defines it, scaled by 1/255"


def search_dirs() -> list[Path]:
    return [PACKAGE_DIR, home_dir(HOME)]


def domain_net_from(weights: Path, raw: dict[str, Any]) -> tuple[FeatureCard, DomainNet]:
    """The card and the network of a domain network file whose card JSON is `raw`."""
    card = FeatureCard.from_raw(raw, weights)
    if card.arch != DOMAIN_ARCH:
        card_path = weights.with_suffix(".json")
        raise FairbenchError(f"{card_path}: card (arch {card.arch}) does not describe {weights.name}")
    net = DomainNet(card.in_channels, card.num_classes, card.width, card.dim)
    try:
        net.load_state_dict(load_file(str(weights)))
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise FairbenchError(f"{weights}: cannot load feature network weights ({exc})") from None
    return card, net


def load_pinned(id: str, sha256: str) -> tuple[FeatureCard, DomainNet]:
    """Find `<id>.safetensors` (package, then $FAIRBENCH_HOME/features/), refuse it unless it hashes to `sha256`
    and its card describes it."""
    weights, raw = find_pinned(
        "feature network", id, sha256, search_dirs(), "fairbench.networks.domain.train_domain_network"
    )
    card, net = domain_net_from(weights, raw)
    if card.id != id or card.sha256 != sha256:
        raise FairbenchError(
            f"{weights.with_suffix('.json')}: card (id {card.id}, arch {card.arch}) does not describe {weights.name}"
        )
    return card, net


def load_first_use(task: TaskSpec, id: str, data_root: str | Path | None = None) -> tuple[FeatureCard, DomainNet]:
    """The domain network `id` trained on first use on this task's data (`fairbench.networks.prepare`)."""
    recipe = first_use_recipe(id)
    if recipe is None:
        raise FairbenchError(f"feature network {id!r} is not trained on first use")
    root = None if data_root is None else Path(data_root)
    weights, raw = find_cached(
        "feature network", id, home_dir(HOME), task, root, f"`fairbench features train --task {task.id}`",
        recipe_dict(id, recipe, recipe.epochs, 0),
    )
    return domain_net_from(weights, raw)


def domain_features(net: DomainNet, images: torch.Tensor, device: torch.device | str = "cpu") -> np.ndarray:
    """N x dim float64 features, computed in float32 over fixed chunks (`run_in_fixed_chunks`)."""
    out = run_in_fixed_chunks(net, images, device, net.features)
    if not out:
        return np.zeros((0, net.embed.out_features), dtype=np.float64)
    return torch.cat(out).numpy().astype(np.float64)


def domain_classes(net: DomainNet, images: torch.Tensor, device: torch.device | str = "cpu") -> np.ndarray:
    """Predicted class per image (how the card's accuracy is measured)."""
    out = run_in_fixed_chunks(net, images, device, lambda x: net(x).argmax(1))
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.int64)


def train_domain_network(
    task: TaskSpec,
    out_dir: str | Path,
    data_root: str | Path | None = None,
    seed: int = 0,
    epochs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    network_id: str | None = None,
    threads: int = 1,
) -> FeatureCard:
    """Train a domain network on `task`'s training split for the class label; write `<id>.safetensors` and
    `<id>.json` into `out_dir`. `network_id` defaults to the recipe trained on this task (`domain-digits` for
    digits-bicolor, `domain-mnist` for mnist-bicolor); `epochs` defaults to the recipe's.

    Deterministic: the same seed gives the same bytes (sha256) on the same machine. Training runs on `threads`
    CPU threads (default one, as the shipped networks were trained) so the machine's thread count cannot
    change the float summation order; a different CPU (vector unit) or torch version still changes the last
    bits, and the weights drift apart from there. A retrained network is therefore checked by agreement with
    the pinned one (`fairbench.networks.reproduction.feature_reproduction`), not by hash. The card records the
    torch version, thread count and CPU.
    """
    if network_id is None:
        matches = [name for name, r in DOMAIN_RECIPES.items() if r.task == task.id]
        if not matches:
            raise FairbenchError(
                f"no domain feature network is trained on task {task.id}; pass network_id "
                f"(recipes: {', '.join(f'{k} <- {r.task}' for k, r in DOMAIN_RECIPES.items())})"
            )
        network_id = matches[0]
    recipe = DOMAIN_RECIPES.get(network_id, DomainRecipe(task=task.id, epochs=epochs or 5))
    epochs = recipe.epochs if epochs is None else epochs
    if epochs < 1:
        raise FairbenchError(f"epochs must be >= 1, got {epochs}")
    c, h, w = task.image_shape
    train = data.load_split(task, recipe.split, data_root)
    test = data.load_split(task, "test", data_root)

    with torch_threads(threads):
        machine = training_machine()
        torch.manual_seed(seed)
        net = DomainNet(c, task.num_classes, recipe.width, recipe.dim)
        plan = Fit(epochs=epochs, lr=recipe.lr, batch_size=recipe.batch_size, one_cycle=True, shift=recipe.shift,
                   flip=recipe.flip)
        fit(net, train.images, train.labels, plan, seed, progress=progress)
        net.eval()
        card = FeatureCard(
            id=network_id, sha256="", task=task.id, arch=DOMAIN_ARCH, in_channels=c, image_size=[h, w],
            num_classes=task.num_classes, width=recipe.width, dim=recipe.dim, resize_rule=resize_rule(c, h, w),
            accuracy=0.0, n_test=len(test), epochs=epochs, seed=seed,
            training={
                "optimizer": "adam", "schedule": "one-cycle", "lr_max": recipe.lr, "batch_size": recipe.batch_size,
                "shift_augmentation_px": recipe.shift, "loss": "cross-entropy on the class label", "threads": threads,
                **({"split": recipe.split} if recipe.split != "train" else {}),
                **({"flip_augmentation": True} if recipe.flip else {}),
            },
            **machine,
        )
        # A copy, in float32 as at inference: measuring must not touch the trained net.
        predicted = domain_classes(copy.deepcopy(net).float().eval(), test.images)
    accuracy = float((predicted == test.labels.numpy()).mean())

    weights = Path(out_dir) / f"{network_id}.safetensors"
    with atomic.atomic_path(weights) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    key = first_use_key(task, recipe_dict(network_id, recipe, epochs, seed), data_root) if recipe.first_use else None
    card = replace(card, sha256=atomic.sha256_file(weights), accuracy=accuracy,
                   **({"first_use_key": key} if key is not None else {}))
    card.write(weights)
    return card
