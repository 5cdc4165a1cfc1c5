"""Sample grids: a PNG a person can look at to judge whether samples look like the task's images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fairbench import atomic


def image_grid(images: torch.Tensor, columns: int, pad: int = 2, pad_value: int = 128) -> np.ndarray:
    """uint8 N x C x H x W -> one uint8 H' x W' x C array, row-major, grey padding between tiles."""
    n, c, h, w = images.shape
    rows = (n + columns - 1) // columns
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), pad_value, dtype=np.uint8)
    array = images.permute(0, 2, 3, 1).numpy()
    for i in range(n):
        r, col = divmod(i, columns)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y : y + h, x : x + w] = array[i]
    return grid


def save_png(path: str | Path, grid: np.ndarray, scale: int = 1) -> Path:
    image = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    with atomic.atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return Path(path)
