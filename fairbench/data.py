"""Task splits: a source's parts (fairbench.sources) sliced, resized and group-transformed per task."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from fairbench import paths, transforms
from fairbench.errors import FairbenchError
from fairbench.sources import SOURCES, DataSource, RawPart  # noqa: F401  (the public API of this module)
from fairbench.sources.base import resize_uint8  # noqa: F401  (likewise)
from fairbench.sources.mnist import MNIST_FILES, MNIST_SHA256  # noqa: F401  (kept importable from here)

if TYPE_CHECKING:
    from fairbench.task_registry.spec import TaskSpec


@dataclass(frozen=True)
class RealSplit:
    """One split of a task: images as the task defines them, with class labels and true groups."""

    images: torch.Tensor  # uint8, N x C x H x W
    labels: torch.Tensor  # int64 class (condition) per image
    groups: torch.Tensor  # int64 group per image
    source_info: dict[str, Any] = field(default_factory=dict)  # the source's RawPart.info

    def __len__(self) -> int:
        return len(self.images)


def load_split(task: TaskSpec, split: str, root: str | Path | None = None) -> RealSplit:
    """The task's `split` ("train", "judge" or "test"): sliced, resized and group-transformed."""
    # A root the user named must exist before a source that downloads into it runs: it never creates the root.
    # The others read what is there and say themselves where to place their files.
    downloads = getattr(SOURCES.get(task.dataset.source), "downloads", False)
    key = (task.task_hash, split, str(paths.existing_data_root(root) if downloads else paths.data_root(root)))
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
    info: dict[str, Any] = {}
    if hasattr(source, "load_slice"):  # large images: read only the slice, resized as they are read
        images, labels = source.load_slice(split_spec, root, (c, h, w), f"task {task.id}: split {split}")
    else:
        raw = source.load(split_spec.part, root)
        info = dict(raw.info)
        if split_spec.stop > len(raw.images):
            raise FairbenchError(
                f"task {task.id}: split {split} wants images up to {split_spec.stop}, "
                f"the {split_spec.part!r} part has {len(raw.images)}"
            )
        images = raw.images[split_spec.start : split_spec.stop]
        labels = raw.labels[split_spec.start : split_spec.stop]
    if task.transform is None:  # real images of unknown group (e.g. an FFHQ reference folder): -1 for every one
        groups = np.full(len(images), -1, dtype=np.int64)
    else:
        params = transforms.parse_params(task.transform, f"task {task.id}.transform")
        transform = transforms.TRANSFORMS.get(task.transform.kind)
        select = getattr(transform, "select", None)  # transforms that subsample a split (long-tail)
        keep = select(labels, split, params) if select is not None else None
        if keep is not None:
            images, labels = images[keep], labels[keep]
    if images.shape[1] != c:
        raise FairbenchError(f"task {task.id}: source has {images.shape[1]} channels, the task wants {c}")
    images = resize_uint8(images, h, w)
    if task.transform is not None:
        images, groups = transform.apply(images, labels, split, params)
    return RealSplit(
        images=torch.from_numpy(np.ascontiguousarray(images)),
        labels=torch.from_numpy(labels.copy()),
        groups=torch.from_numpy(groups),
        source_info=info,
    )


def data_source(task: TaskSpec, root: str | Path | None = None) -> dict | None:
    """Which data the task's splits come from: source, format and the content sha256 of every part its splits
    use, for sources that can tell (None otherwise). Results record it, and a board refuses to compare
    results whose data differ (e.g. CIFAR-10's original pixels and a JPEG copy)."""
    source = SOURCES.get(task.dataset.source)
    identify = getattr(source, "identity", None)
    if identify is None:
        return None
    parts = sorted({task.split_spec(name).part for name in _split_names(task)})
    where = paths.existing_data_root(root)
    found = {part: identify(part, where) for part in parts}
    formats = sorted({identity.format for identity in found.values()})
    return {
        "source": task.dataset.source,
        "format": "+".join(formats),
        "sha256": {part: identity.sha256 for part, identity in found.items()},
    }


def _split_names(task: TaskSpec) -> list[str]:
    return ["train", "judge", "test"] + (["reference"] if task.quality is not None else [])
