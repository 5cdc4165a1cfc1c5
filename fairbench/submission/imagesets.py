"""Image-set submissions: an `.npz` (uint8 NHWC `images`, int `labels`) or a folder of images.

These let any model family (GAN, diffusion, ...) be scored. Every problem with a file is a FairbenchError
naming the file; nothing is unpickled (`allow_pickle=False`).
"""

from __future__ import annotations

import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fairbench.errors import FairbenchError
from fairbench.task_registry import TaskSpec

MIN_SAMPLES = 10  # fewer cannot support a bootstrap interval worth printing
# Modes converted without losing or inventing information for the task's channel count.
_ACCEPTED_MODES = {1: {"L", "1"}, 3: {"RGB", "P"}}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


@dataclass(frozen=True)
class ImageSet:
    images: torch.Tensor  # uint8 N x C x H x W
    labels: torch.Tensor | None  # int64 condition per image, or None for unconditional tasks


def load_image_set(task: TaskSpec, path: str | Path) -> ImageSet:
    path = Path(path)
    if path.is_dir():
        return _load_folder(task, path)
    if not path.exists():
        raise FairbenchError(f"{path}: no such file or folder")
    if path.suffix.lower() != ".npz":
        raise FairbenchError(f"{path}: image sets are .npz files or folders of images")
    return _load_npz(task, path)


def _load_npz(task: TaskSpec, path: Path) -> ImageSet:
    # np.load would return a bare array for .npy bytes and call any other non-zip file "pickled": check first.
    if not zipfile.is_zipfile(path):
        raise FairbenchError(f"{path}: not a readable .npz (not a zip archive; save with numpy.savez)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = _npz_members(path, archive)
            if "images" not in members:
                found = ", ".join(sorted(members)) or "none"
                raise FairbenchError(f"{path}: missing array 'images' (found: {found})")
            images = _read_member(path, archive, members["images"], "images")
            labels = _read_member(path, archive, members["labels"], "labels") if "labels" in members else None
    except FairbenchError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, ValueError) as exc:
        # RuntimeError: an encrypted member; NotImplementedError: an unsupported compression method.
        kind = "corrupt compressed data" if isinstance(exc, zlib.error) else type(exc).__name__
        detail = " ".join(str(exc).split())[:200]
        raise FairbenchError(f"{path}: not a readable .npz ({kind}: {detail})") from None
    c, h, w = task.image_shape
    if images.dtype != np.uint8:
        raise FairbenchError(f"{path}: 'images' must be uint8 (0-255), got {images.dtype}")
    if images.ndim != 4 or images.shape[1:] != (h, w, c):
        raise FairbenchError(f"{path}: 'images' must have shape N x {h} x {w} x {c} (NHWC), got {images.shape}")
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return ImageSet(images=tensor, labels=_check_labels(task, path, labels, len(images)))


def _npz_members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Array name -> zip member, the way numpy.savez names them (`NAME.npy`); other members are ignored."""
    members: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if name in members:
            raise FairbenchError(f"{path}: array {name!r} is stored twice")
        members[name] = info
    return members


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> np.ndarray:
    """Read one .npy member with allow_pickle=False, checking its header before allocating anything.

    A header is only a claim: a few bytes can declare a petabyte array, so its size is checked against the
    member's stored (uncompressed) size before numpy allocates the array.
    """
    if not info.filename.endswith(".npy"):
        raise FairbenchError(f"{path}: member {info.filename!r} is not a .npy array (save with numpy.savez)")
    with archive.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0)):
            raise FairbenchError(f"{path}: '{key}' uses .npy format version {version}; save with numpy.savez")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        try:
            shape, _, dtype = read_header(fh)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError):
            raise
        except Exception as exc:  # numpy's header parser lets e.g. tokenize.TokenError through on garbled text
            detail = " ".join(str(exc).split())[:200]
            raise FairbenchError(f"{path}: '{key}' has an unreadable .npy header ({type(exc).__name__}: {detail})") from None
        if dtype.hasobject:
            raise FairbenchError(f"{path}: refused: '{key}' holds Python objects (allow_pickle is never used)")
        needed = math.prod(shape) * dtype.itemsize
        available = info.file_size - fh.tell()
        if needed > available:
            raise FairbenchError(
                f"{path}: '{key}' is truncated: its header declares shape {shape} ({dtype}, {needed} bytes), "
                f"the file holds {max(available, 0)}"
            )
    with archive.open(info) as fh:
        return np.lib.format.read_array(fh, allow_pickle=False)


def _check_labels(task: TaskSpec, path: Path, labels: np.ndarray | None, n: int) -> torch.Tensor | None:
    if n < MIN_SAMPLES:
        raise FairbenchError(f"{path}: {n} images; at least {MIN_SAMPLES} are needed")
    if not task.conditional:
        return None
    if labels is None:
        raise FairbenchError(f"{path}: task {task.id} is conditional: 'labels' (one int per image) is required")
    if labels.dtype.kind not in "iu":
        raise FairbenchError(f"{path}: 'labels' must be integers, got {labels.dtype}")
    if labels.shape != (n,):
        raise FairbenchError(f"{path}: 'labels' must have shape ({n},), got {labels.shape}")
    if labels.min() < 0 or labels.max() >= task.num_classes:
        raise FairbenchError(f"{path}: 'labels' must lie in [0, {task.num_classes}), got {labels.min()}..{labels.max()}")
    return torch.from_numpy(labels.astype(np.int64))


def _load_folder(task: TaskSpec, root: Path) -> ImageSet:
    """Unconditional: images directly in the folder. Conditional: one sub-folder per class (index or name)."""
    if task.conditional:
        names = task.class_names
        entries: list[tuple[Path, int]] = []
        for sub in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
            if not sub.is_dir():
                raise FairbenchError(f"{sub}: task {task.id} is conditional: put images in one folder per class")
            if sub.name in names:
                label = names.index(sub.name)
            elif sub.name.isdigit() and int(sub.name) < task.num_classes:
                label = int(sub.name)
            else:
                raise FairbenchError(f"{sub}: folder name is not a class of task {task.id} ({', '.join(names)})")
            entries += [(f, label) for f in _image_files(sub)]
    else:
        entries = [(f, -1) for f in _image_files(root)]
    if not entries:
        raise FairbenchError(f"{root}: no images found")
    images = np.stack([_read_image(task, f) for f, _ in entries])
    labels = np.array([label for _, label in entries], dtype=np.int64) if task.conditional else None
    tensor = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    return ImageSet(images=tensor, labels=_check_labels(task, root, labels, len(images)))


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for f in files:
        if f.is_dir() or f.suffix.lower() not in IMAGE_SUFFIXES:
            raise FairbenchError(f"{f}: not an image file (expected {', '.join(sorted(IMAGE_SUFFIXES))})")
    return files


def _read_image(task: TaskSpec, path: Path) -> np.ndarray:
    c, h, w = task.image_shape
    try:
        with Image.open(path) as img:  # reads the header only; pixels are decoded by convert()
            if img.mode not in _ACCEPTED_MODES[c]:
                want = "greyscale (1 channel)" if c == 1 else "RGB (3 channels)"
                raise FairbenchError(f"{path}: image mode {img.mode}, task {task.id} needs {want}")
            if img.size != (w, h):  # checked before decoding: a header can claim any size
                raise FairbenchError(f"{path}: image is {img.size[0]}x{img.size[1]}, task {task.id} needs {w}x{h}")
            img = img.convert("L" if c == 1 else "RGB")
            array = np.asarray(img, dtype=np.uint8)
    except Image.DecompressionBombError:
        raise FairbenchError(f"{path}: refused: the image header claims a huge size (decompression bomb)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:  # SyntaxError: some plugins' parse errors
        raise FairbenchError(f"{path}: cannot read image ({type(exc).__name__})") from None
    if array.shape[:2] != (h, w):
        raise FairbenchError(f"{path}: image is {array.shape[1]}x{array.shape[0]}, task {task.id} needs {w}x{h}")
    return array.reshape(h, w, c)
