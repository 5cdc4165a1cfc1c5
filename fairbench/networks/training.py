"""The training loop both kinds of network share, and what a card records about the machine it ran on.

Seeded and deterministic at a given thread count: the same seed, data, thread count, CPU type and torch
version give the same bytes. The order of random draws is part of the recipe (data order, then per batch the
shift, then the flip), so the loop is written once, here, and never reordered.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class Fit:
    """How a network is fitted: Adam at `lr` (constant, or the peak of a one-cycle schedule), shuffled
    batches, and the augmentations (random shift by up to `shift` pixels, random horizontal flips)."""

    epochs: int
    lr: float
    batch_size: int
    one_cycle: bool
    shift: int = 0
    flip: bool = False


def fit(
    net: nn.Module, images: torch.Tensor, targets: torch.Tensor, plan: Fit, seed: int,
    class_weights: torch.Tensor | None = None, progress: Callable[[int, int], None] | None = None,
) -> None:
    """Train `net` in place for cross-entropy on `targets`; `progress(done, total)` after every step.
    The caller seeds torch (`torch.manual_seed`) before building `net`; the data order has its own generator."""
    opt = torch.optim.Adam(net.parameters(), lr=plan.lr)
    rng = torch.Generator().manual_seed(seed)
    batch = plan.batch_size
    n_batches = (len(images) + batch - 1) // batch
    total = plan.epochs * n_batches
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=plan.lr, total_steps=total) if plan.one_cycle else None
    net.train()
    for epoch in range(plan.epochs):
        order = torch.randperm(len(images), generator=rng)
        for b in range(n_batches):
            idx = order[b * batch : (b + 1) * batch]
            inputs = random_shift(images[idx], plan.shift, rng)
            if plan.flip:
                flip = torch.rand(len(idx), generator=rng) < 0.5
                inputs = torch.where(flip[:, None, None, None], inputs.flip(3), inputs)
            loss = nn.functional.cross_entropy(net(inputs), targets[idx], weight=class_weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            if progress is not None:
                progress(epoch * n_batches + b + 1, total)


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


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run with `threads` intra-op threads (None: torch's current setting), restoring the setting after."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def training_machine() -> dict[str, Any]:
    """What a freshly written card records about where it was trained: torch version, threads, CPU."""
    return {"torch_version": torch.__version__, "threads": torch.get_num_threads(), "cpu": cpu_name()}


def cpu_name() -> str:
    """The CPU model ("model name" in /proc/cpuinfo on Linux), else platform.processor(), else the machine."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or os.environ.get("PROCESSOR_IDENTIFIER", "") or "unknown"
