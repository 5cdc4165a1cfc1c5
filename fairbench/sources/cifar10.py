"""CIFAR-10 (Krizhevsky 2009), 32x32 RGB, in either of its two standard layouts.

1. An ImageFolder directory `ROOT/cifar10/{train,test}/<class>/*.{png,jpg,jpeg}` (preferred when present).
   Such copies are often JPEG (the development copy is JPEG quality 75): their pixels are not the original
   ones, so the format is recorded (`imagefolder-jpeg` / `imagefolder-png`) with the content hash of the
   decoded part, and a board never compares results across them.
2. torchvision's `CIFAR10` (`ROOT/cifar-10-batches-py/`, the original python batches, format
   `cifar10-python`), downloaded by torchvision when missing and allowed. torchvision checks every batch
   file's md5 against the official values before it unpickles it, so only the official files are read.

Class indices follow CIFAR-10's label order (airplane = 0 ... truck = 9) by name, never by folder sorting.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fairbench import netcheck, paths
from fairbench.errors import FairbenchError
from fairbench.sources.base import SOURCES, DataIdentity, RawPart, content_sha256
from fairbench.sources.cache import cached_part, fingerprint

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
PARTS = ("train", "test")
PART_SIZES = {"train": 50000, "test": 10000}
IMAGE_SUFFIXES = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


class Cifar10:
    """Registered as `cifar10`; `load` returns the part, `identity` says which bytes it came from."""

    downloads = True  # into the data root, which must exist (fairbench.paths.existing_data_root)

    def __init__(self) -> None:
        self._python_memo: dict[tuple[str, str], tuple[RawPart, str]] = {}

    def load(self, part: str, root: Path) -> RawPart:
        return self._load(part, root)[0]

    def identity(self, part: str, root: Path) -> DataIdentity:
        _, fmt, sha = self._load(part, root)
        return DataIdentity(source="cifar10", format=fmt, sha256=sha)

    def _load(self, part: str, root: Path) -> tuple[RawPart, str, str]:
        if part not in PARTS:
            raise FairbenchError(f"CIFAR-10 has parts 'train' and 'test'; the task asks for {part!r}")
        folder = Path(root) / "cifar10" / part
        if folder.is_dir():
            return _load_imagefolder(folder)
        return self._load_python(part, Path(root))

    def _load_python(self, part: str, root: Path) -> tuple[RawPart, str, str]:
        key = (str(root), part)
        if key not in self._python_memo:
            import torchvision

            train = part == "train"
            if not (root / "cifar-10-batches-py").is_dir():
                if paths.offline():
                    raise FairbenchError(_missing_message(root, "FAIRBENCH_OFFLINE is set"))
                # Probed first: an unreachable host fails in seconds, not after torchvision's three tries.
                _, failed = netcheck.reachable([torchvision.datasets.CIFAR10.url])
                if failed:
                    raise FairbenchError(_missing_message(root, "download failed: " + "; ".join(failed)))
                try:
                    with netcheck.read_timeout():
                        torchvision.datasets.CIFAR10(str(root), train=train, download=True)
                except Exception as exc:  # network errors come in many types; all mean the same to the user
                    raise FairbenchError(_missing_message(root, f"download failed: {exc}")) from None
            try:
                ds = torchvision.datasets.CIFAR10(str(root), train=train, download=False)
            except Exception as exc:  # torchvision raises RuntimeError on an md5 mismatch
                raise FairbenchError(f"{root / 'cifar-10-batches-py'}: cannot read CIFAR-10 ({exc})") from None
            images = np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))  # N x H x W x C -> N x C x H x W
            labels = np.asarray(ds.targets, dtype=np.int64)
            raw = RawPart(images=images, labels=labels)
            self._python_memo[key] = (raw, content_sha256(images, labels))
        raw, sha = self._python_memo[key]
        return raw, "cifar10-python", sha


def _load_imagefolder(folder: Path) -> tuple[RawPart, str, str]:
    present = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if sorted(present) != sorted(CLASSES):
        raise FairbenchError(
            f"{folder}: expected one folder per CIFAR-10 class ({', '.join(CLASSES)}), found {', '.join(present) or 'none'}"
        )
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(CLASSES):
        class_files = sorted(p for p in (folder / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        files.extend(class_files)
        labels.extend([label] * len(class_files))
    if not files:
        raise FairbenchError(f"{folder}: no .png/.jpg images in the class folders")
    kinds = sorted({IMAGE_SUFFIXES[f.suffix.lower()] for f in files})
    fmt = "imagefolder-" + "+".join(kinds)
    key = fingerprint(files, folder)
    raw, sha = cached_part(f"cifar10-{folder.name}", key, lambda: _decode(files, np.asarray(labels, dtype=np.int64)))
    return raw, fmt, sha


def _decode(files: list[Path], labels: np.ndarray) -> RawPart:
    from PIL import Image, UnidentifiedImageError

    images = np.empty((len(files), 3, 32, 32), dtype=np.uint8)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                arr = np.asarray(img.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise FairbenchError(f"{path}: cannot decode image ({exc})") from None
        if arr.shape != (32, 32, 3):
            raise FairbenchError(f"{path}: CIFAR-10 images are 32x32, this one is {arr.shape[1]}x{arr.shape[0]}")
        images[i] = arr.transpose(2, 0, 1)
    return RawPart(images=images, labels=labels)


def _missing_message(root: Path, why: str) -> str:
    return (
        f"CIFAR-10 not found ({why}): put torchvision's cifar-10-batches-py/ (data_batch_1..5, test_batch, "
        f"batches.meta from cifar-10-python.tar.gz, md5 c58f30108f718f92721af3b95e74349a) in {root}/, or an "
        f"ImageFolder copy at {root}/cifar10/{{train,test}}/<class>/*.png; or pass --data-root / set FAIRBENCH_DATA"
    )


SOURCES.register("cifar10", Cifar10())
