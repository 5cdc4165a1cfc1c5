"""--device auto|cpu|cuda resolved once, with a clear error when CUDA is asked for but absent."""

from __future__ import annotations

import torch

from fairbench.errors import FairbenchError


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise FairbenchError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise FairbenchError(f"--device must be auto, cpu or cuda[:N], got {name!r}")
