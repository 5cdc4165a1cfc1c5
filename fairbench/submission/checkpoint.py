"""The generator checkpoint format and the only way fairbench reads .pt files.

A checkpoint is data, not code: every load uses `torch.load(..., weights_only=True)`, so a pickle that
carries code is refused before any of it runs.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fairbench import atomic
from fairbench.errors import FairbenchError
from fairbench.plugins import load_plugins
from fairbench.submission.generators import ARCHITECTURES

FORMAT = "fairbench-generator/1"


@dataclass
class GeneratorCheckpoint:
    arch: str
    arch_kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    task: str
    task_hash: str
    method: str
    config: dict[str, Any]
    seed: int
    versions: dict[str, str] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)  # steps, wall_time_s
    data_hash: str | None = None  # the task's data_hash at training time: what the method saw
    format: str = FORMAT


def save_torch(path: str | Path, obj: Any) -> None:
    # Through a file object: torch then writes with Python's I/O, so a full disk is OSError(ENOSPC), which
    # atomic_path reports in one line, and not a RuntimeError from torch's own writer saying nothing of space.
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save(obj, fh)


def safe_torch_load(path: str | Path, what: str = "checkpoint", mmap: bool = False) -> Any:
    """torch.load with weights_only=True; every failure becomes one FairbenchError line naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FairbenchError(f"{path}: {what} not found")
    try:
        with warnings.catch_warnings():  # torch warns about legacy pickle protocols; the error line says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        if not _looks_like_torch_file(path):
            raise FairbenchError(f"{path}: not a readable {what} (neither a torch zip archive nor a pickle)") from None
        detail = str(exc).strip().splitlines()
        hint = next((line for line in detail if "GLOBAL" in line or "Unsupported" in line), "")
        raise FairbenchError(
            f"{path}: refused: the file holds Python objects, not plain weights (loaded with weights_only=True"
            f"{'; ' + hint.strip() if hint else ''})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError):
        # torch's own words here are internal (a record number, "PytorchStreamReader ... miniz error"): not shown
        raise FairbenchError(f"{path}: not a readable {what} (corrupt or truncated)") from None


def _looks_like_torch_file(path: Path) -> bool:
    """A torch zip archive (PK) or a pickle with a protocol header (0x80); anything else is corrupt bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return head.startswith(b"PK") or head[:1] == b"\x80"


def save_checkpoint(path: str | Path, ckpt: GeneratorCheckpoint) -> None:
    save_torch(path, asdict(ckpt))


def load_checkpoint(path: str | Path) -> GeneratorCheckpoint:
    raw = safe_torch_load(path)
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
        raise FairbenchError(f"{path}: not a fairbench generator checkpoint (format {found!r}, expected {FORMAT!r})")
    expected = {f for f in GeneratorCheckpoint.__dataclass_fields__}
    missing = sorted(k for k in expected - set(raw) if k not in ("versions", "train", "data_hash"))
    if missing:
        raise FairbenchError(f"{path}: checkpoint lacks {', '.join(missing)}")
    unknown = sorted(set(raw) - expected)
    if unknown:
        raise FairbenchError(f"{path}: checkpoint has unknown keys {', '.join(unknown)}")
    if not isinstance(raw["state_dict"], dict) or not all(
        isinstance(v, torch.Tensor) for v in raw["state_dict"].values()
    ):
        raise FairbenchError(f"{path}: checkpoint state_dict must map names to tensors")
    if not isinstance(raw["arch_kwargs"], dict):
        raise FairbenchError(f"{path}: checkpoint arch_kwargs must be a mapping")
    return GeneratorCheckpoint(**raw)


def build_generator(ckpt: GeneratorCheckpoint, source: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """Rebuild the registered architecture and load the weights; mismatches are the file's fault.

    The architecture is first built on the meta device (shapes only, no memory) and its parameter shapes are
    compared with the file's weights, so `arch_kwargs` that ask for a huge network are refused before anything
    is allocated: the real network is never larger than the weights the file actually holds. (An architecture
    that cannot be built on meta skips this pre-check.)
    """
    load_plugins()
    try:
        factory = ARCHITECTURES.get(ckpt.arch)
    except FairbenchError as exc:
        raise FairbenchError(f"{source}: {exc}") from None
    try:
        with torch.device("meta"):
            skeleton = factory(**ckpt.arch_kwargs)
    except Exception:  # noqa: BLE001 - bad kwargs, or a plugin that cannot build on meta: the real build decides
        skeleton = None
    if skeleton is not None:
        _check_weights_fit(ckpt, source, {k: tuple(v.shape) for k, v in skeleton.state_dict().items()})
    model = _build(factory, ckpt, source)
    try:
        model.load_state_dict(ckpt.state_dict, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())  # torch's first line names only the class; the keys follow
        raise FairbenchError(f"{source}: weights do not fit architecture {ckpt.arch!r} ({detail[:300]})") from None
    return model.to(device).eval()


def _build(factory: Any, ckpt: GeneratorCheckpoint, source: str | Path) -> nn.Module:
    try:
        return factory(**ckpt.arch_kwargs)
    except (TypeError, ValueError, RuntimeError, NotImplementedError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise FairbenchError(f"{source}: cannot build architecture {ckpt.arch!r}: {detail}") from None


def _check_weights_fit(ckpt: GeneratorCheckpoint, source: str | Path, expected: dict[str, tuple[int, ...]]) -> None:
    got = {k: tuple(v.shape) for k, v in ckpt.state_dict.items()}
    problems = []
    if missing := sorted(set(expected) - set(got)):
        problems.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    if unexpected := sorted(set(got) - set(expected)):
        problems.append(f"unexpected {', '.join(unexpected[:5])}{' ...' if len(unexpected) > 5 else ''}")
    for key in sorted(set(got) & set(expected)):
        if got[key] != expected[key]:
            problems.append(f"{key} has shape {list(got[key])}, the architecture needs {list(expected[key])}")
            break
    if problems:
        raise FairbenchError(f"{source}: weights do not fit architecture {ckpt.arch!r} ({'; '.join(problems)})")
