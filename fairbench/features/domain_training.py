"""Training a domain feature network (`fairbench features train`, and first use): the card's recipe, seeded and
deterministic at a given thread count, written as safetensors plus its JSON card (see `fairbench.features`)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import save_file
from torch import nn

from fairbench import atomic, data
from fairbench.errors import FairbenchError
from fairbench.features import (
    DOMAIN_ARCH,
    DOMAIN_RECIPES,
    DomainNet,
    DomainNetwork,
    DomainRecipe,
    FeatureCard,
    _domain_resize_rule,
    _recipe_dict,
)

if TYPE_CHECKING:
    from fairbench.tasks import TaskSpec


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
    the pinned one (`fairbench.reproduction.feature_reproduction`), not by hash. The card records the torch
    version, thread count and CPU.
    """
    from fairbench.reproduction import training_machine

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

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        machine = training_machine()
        torch.manual_seed(seed)
        net = DomainNet(c, task.num_classes, recipe.width, recipe.dim)
        opt = torch.optim.Adam(net.parameters(), lr=recipe.lr)
        rng = torch.Generator().manual_seed(seed)
        n_batches = (len(train) + recipe.batch_size - 1) // recipe.batch_size
        total = epochs * n_batches
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe.lr, total_steps=total)
        net.train()
        for epoch in range(epochs):
            order = torch.randperm(len(train), generator=rng)
            for b in range(n_batches):
                idx = order[b * recipe.batch_size : (b + 1) * recipe.batch_size]
                batch = random_shift(train.images[idx], recipe.shift, rng)
                if recipe.flip:
                    flip = torch.rand(len(idx), generator=rng) < 0.5
                    batch = torch.where(flip[:, None, None, None], batch.flip(3), batch)
                loss = nn.functional.cross_entropy(net(batch), train.labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                if progress is not None:
                    progress(epoch * n_batches + b + 1, total)
        net.eval()
        resize_rule = _domain_resize_rule(c, h, w)
        provisional = FeatureCard(
            id=network_id, sha256="", task=task.id, arch=DOMAIN_ARCH, in_channels=c, image_size=[h, w],
            num_classes=task.num_classes, width=recipe.width, dim=recipe.dim, resize_rule=resize_rule,
            accuracy=0.0, n_test=len(test), epochs=epochs, seed=seed,
            training={
                "optimizer": "adam", "schedule": "one-cycle", "lr_max": recipe.lr, "batch_size": recipe.batch_size,
                "shift_augmentation_px": recipe.shift, "loss": "cross-entropy on the class label", "threads": threads,
                **({"split": recipe.split} if recipe.split != "train" else {}),
                **({"flip_augmentation": True} if recipe.flip else {}),
            },
            **machine,
        )
        predicted = DomainNetwork(provisional, copy.deepcopy(net)).classify(test.images)  # a copy: inference must not touch the trained net
    finally:
        torch.set_num_threads(previous)
    accuracy = float((predicted == test.labels.numpy()).mean())

    weights = Path(out_dir) / f"{network_id}.safetensors"
    with atomic.atomic_path(weights) as tmp:
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp))
    extra = {}
    if recipe.first_use:
        from fairbench import first_use

        extra["first_use_key"] = first_use.first_use_key(task, _recipe_dict(network_id, recipe, epochs, seed), data_root)
    card = FeatureCard(
        **{**asdict(provisional), "sha256": atomic.sha256_file(weights), "accuracy": accuracy, **extra}
    )
    atomic.write_text(weights.with_suffix(".json"), json.dumps(asdict(card), indent=2) + "\n")
    return card


def random_shift(images: torch.Tensor, shift: int, rng: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `shift` pixels in x and y, filling with the image's border (edge padding
    keeps a white background white)."""
    if shift == 0:
        return images
    n, _, h, w = images.shape
    padded = nn.functional.pad(images.float(), (shift, shift, shift, shift), mode="replicate")
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=rng)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=rng)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]
    out = padded[torch.arange(n)[:, None, None, None], torch.arange(images.shape[1])[None, :, None, None], rows, cols]
    return out.to(torch.uint8)
