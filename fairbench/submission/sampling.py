"""Draw a task's evaluation samples from a generator: seeded latents, equal counts per condition.

All latents are drawn up front from one seeded torch.Generator and then cut into chunks of
`fairbench.chunking.SCORE_CHUNK`, always: the images (and every score computed from them) are the same bits
however they are asked for (see `fairbench.chunking` for why the size of each call matters).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from fairbench.chunking import chunk_slices
from fairbench.errors import FairbenchError


def condition_labels(n_samples: int, num_classes: int) -> torch.Tensor:
    """0, 1, ..., K-1, 0, 1, ...: equal counts per condition (the first n mod K get one more)."""
    return torch.arange(n_samples, dtype=torch.int64) % num_classes


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats to uint8 with round-half-to-even, the same on every device."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def sample_latents(n_samples: int, latent_dim: int, seed: int) -> torch.Tensor:
    """The N x latent_dim latents `generate` feeds a generator for this seed (for checks that need them too)."""
    return torch.randn(n_samples, latent_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(
    model: nn.Module,
    n_samples: int,
    seed: int,
    image_shape: tuple[int, int, int],
    num_classes: int,
    device: torch.device | str = "cpu",
    source: str = "generator",
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(uint8 N x C x H x W images on the CPU, condition labels or None for unconditional models)."""
    latent_dim = int(getattr(model, "latent_dim", 0))
    if latent_dim < 1:
        raise FairbenchError(f"{source}: generator has no positive `latent_dim`")
    model_classes = getattr(model, "num_classes", None)
    if isinstance(model_classes, int) and not isinstance(model_classes, bool) and model_classes != num_classes:
        built = f"conditional on {model_classes} classes" if model_classes > 0 else "unconditional"
        wanted = f"{num_classes} classes" if num_classes > 0 else "no classes (unconditional)"
        raise FairbenchError(f"{source}: generator is {built}; the task needs {wanted}")
    z_all = sample_latents(n_samples, latent_dim, seed)
    labels = condition_labels(n_samples, num_classes) if num_classes > 0 else None
    model.eval()
    chunks = []
    for part in chunk_slices(n_samples):
        z = z_all[part].to(device)
        y = labels[part].to(device) if labels is not None else None
        try:
            out = model(z, y)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # the submitted network's fault
            detail = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise FairbenchError(f"{source}: generator failed on a batch of shape {tuple(z.shape)} ({detail})") from None
        expected = (len(z), *image_shape)
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise FairbenchError(f"{source}: generator returned shape {got}, expected {expected}")
        if not torch.isfinite(out).all():
            raise FairbenchError(f"{source}: generator returned NaN or infinite values")
        chunks.append(to_uint8(out.float()).cpu())
        if progress is not None:
            progress(part.stop, n_samples)
    return torch.cat(chunks), labels
