"""Data sources: real datasets in their standard on-disk layouts, sliced and transformed per task."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from fairbench import paths, transforms
from fairbench.errors import FairbenchError
from fairbench.registry import Registry

if TYPE_CHECKING:
    from fairbench.tasks import TaskSpec


@dataclass(frozen=True)
class RawPart:
    images: np.ndarray  # uint8, N x C x H x W
    labels: np.ndarray  # int64 class labels


@dataclass(frozen=True)
class RealSplit:
    """One split of a task: images as the task defines them, with class labels and true groups."""

    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64 class (condition) per image
    groups: torch.Tensor  # int64 group per image

    def __len__(self) -> int:
        return len(self.images)


class DataSource(Protocol):
    def load(self, part: str, root: Path) -> RawPart: ...


SOURCES: Registry[DataSource] = Registry("data source")


class SklearnDigits:
    """scikit-learn's bundled UCI digits (8x8, values 0-16): real data that needs no download."""

    def load(self, part: str, root: Path) -> RawPart:
        if part != "all":
            raise FairbenchError(f"sklearn-digits has one part, 'all'; the task asks for {part!r}")
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        return RawPart(images=images, labels=digits.target.astype(np.int64))


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# sha256 of the uncompressed IDX files, named in the "place file X at path Y" message.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


class TorchvisionMNIST:
    """MNIST in torchvision's layout (`ROOT/MNIST/raw/*-ubyte`), downloaded by torchvision when allowed."""

    def load(self, part: str, root: Path) -> RawPart:
        if part not in MNIST_FILES:
            raise FairbenchError(f"MNIST has parts 'train' and 'test'; the task asks for {part!r}")
        import torchvision

        raw = root / "MNIST" / "raw"
        missing = [name for name in MNIST_FILES[part] if not (raw / name).is_file()]
        if missing:
            if paths.offline():
                raise FairbenchError(_missing_mnist_message(raw, missing, "FAIRBENCH_OFFLINE is set"))
            try:
                torchvision.datasets.MNIST(str(root), train=part == "train", download=True)
            except Exception as exc:  # network errors come in many types; all mean the same to the user
                raise FairbenchError(_missing_mnist_message(raw, missing, f"download failed: {exc}")) from None
        try:
            ds = torchvision.datasets.MNIST(str(root), train=part == "train", download=False)
        except Exception as exc:
            raise FairbenchError(f"{raw}: cannot read MNIST ({exc})") from None
        return RawPart(images=ds.data.numpy()[:, None].copy(), labels=ds.targets.numpy().astype(np.int64))


def _missing_mnist_message(raw: Path, missing: list[str], why: str) -> str:
    files = ", ".join(f"{name} (sha256 {MNIST_SHA256[name]})" for name in missing)
    return (
        f"MNIST files missing ({why}): place {files} (uncompressed IDX, torchvision layout) in "
        f"{raw}/, or pass --data-root / set FAIRBENCH_DATA to a folder that has MNIST/raw/"
    )


SOURCES.register("sklearn-digits", SklearnDigits())
SOURCES.register("torchvision-mnist", TorchvisionMNIST())


def resize_uint8(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize (antialiased when shrinking) of uint8 NCHW images, rounded back to uint8."""
    if images.shape[2:] == (height, width):
        return images
    tensor = torch.from_numpy(images).float()
    out = F.interpolate(tensor, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return out.round().clamp(0, 255).to(torch.uint8).numpy()


def load_split(task: TaskSpec, split: str, root: str | Path | None = None) -> RealSplit:
    """The task's `split` ("train", "judge" or "test"): sliced, resized and group-transformed."""
    key = (task.task_hash, split, str(paths.data_root(root)))
    if key not in _SPLIT_CACHE:
        if len(_SPLIT_CACHE) >= 8:
            _SPLIT_CACHE.pop(next(iter(_SPLIT_CACHE)))
        _SPLIT_CACHE[key] = _build_split(task, split, Path(key[2]))
    return _SPLIT_CACHE[key]


_SPLIT_CACHE: dict[tuple[str, str, str], RealSplit] = {}


def _build_split(task, split: str, root: Path) -> RealSplit:
    split_spec = task.split_spec(split)
    source = SOURCES.get(task.dataset.source)
    c, h, w = task.image_shape
    if hasattr(source, "load_slice"):  # large images: read only the slice, resized as they are read
        images, labels = source.load_slice(split_spec, root, (c, h, w), f"task {task.id}: split {split}")
    else:
        raw = source.load(split_spec.part, root)
        if split_spec.stop > len(raw.images):
            raise FairbenchError(
                f"task {task.id}: split {split} wants images up to {split_spec.stop}, "
                f"the {split_spec.part!r} part has {len(raw.images)}"
            )
        images = raw.images[split_spec.start : split_spec.stop]
        labels = raw.labels[split_spec.start : split_spec.stop]
    if images.shape[1] != c:
        raise FairbenchError(f"task {task.id}: source has {images.shape[1]} channels, the task wants {c}")
    images = resize_uint8(images, h, w)
    if task.transform is None:  # real images of unknown group (e.g. an FFHQ reference folder): -1 for every one
        return RealSplit(
            images=torch.from_numpy(np.ascontiguousarray(images)),
            labels=torch.from_numpy(labels.copy()),
            groups=torch.full((len(images),), -1, dtype=torch.int64),
        )
    params = transforms.parse_params(task.transform, f"task {task.id}.transform")
    images, groups = transforms.TRANSFORMS.get(task.transform.kind).apply(images, labels, split, params)
    return RealSplit(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(labels.copy()),
        groups=torch.from_numpy(groups),
    )


# Imported last: it registers itself in SOURCES and uses resize_uint8 from this module.
from fairbench import data_ffhq  # noqa: E402,F401  (registers "ffhq-folder")
