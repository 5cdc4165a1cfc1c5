"""The one image input every no-reference quality metric takes: uint8 N x C x H x W, C = 1 or 3.

Its own module so that the IQA registry (iqa.py) and the metrics it registers (eqface.py) both import it
without importing each other."""

from __future__ import annotations

import numpy as np
import torch

from fairbench.errors import FairbenchError


def as_uint8_nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise FairbenchError(f"IQA expects uint8 images, got {images.dtype}")
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise FairbenchError(f"IQA expects a uint8 array or tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise FairbenchError(f"IQA expects uint8 images, got {images.dtype}")
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise FairbenchError(f"IQA expects N x C x H x W images with C = 1 or 3, got shape {tuple(images.shape)}")
    return images
