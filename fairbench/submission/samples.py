"""A submission's images for a task, the one way every caller gets them: a checkpoint (or a generator in
memory) sampled by `sampling.generate`, or an image set read as submitted; optionally with the judge's group
per image.

Scoring, the report's grids, `fairbench grid` and the checks that re-draw a run's samples must all see the same
images for the same submission, N and seed, or a grid would show samples the score never counted; so they all
come through here, and only `sampling.generate` decides the seeding, the condition of each sample, the fixed
chunking and the conversion to uint8.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from fairbench.errors import FairbenchError
from fairbench.results import Submission, sha256_path
from fairbench.submission import checkpoint as ckpt_io
from fairbench.submission import imagesets, sampling
from fairbench.task_registry import TaskSpec, get_task

if TYPE_CHECKING:
    from fairbench.judges import Judge

Progress = Callable[[int, int], None]  # (samples done, total)


@dataclass(frozen=True)
class Samples:
    """What a submission shows for a task: the images, the condition each was drawn for, and (when judged) the
    group the task's judge sees in each; plus where they came from, so a result can name its submission."""

    images: torch.Tensor  # uint8 N x C x H x W, on the CPU
    conditions: torch.Tensor | None  # int64 condition per image; None for an unconditional task
    groups: np.ndarray | None  # the judge's group per image; None until judged (`with_judge_labels`)
    task: TaskSpec
    kind: str  # "checkpoint", "generator" (a network in memory), "npz" or "folder"
    name: str  # a checkpoint's method, an image set's file or folder name, or a generator's description
    path: Path | None  # the submitted file or folder; None for a generator in memory
    seed: int | None  # the sampling seed; None for an image set, whose images are given
    latent_dim: int | None = None  # of the generator: `sampling.sample_latents` re-draws its latents

    def __len__(self) -> int:
        return len(self.images)

    def submission(self) -> Submission:
        """The result's record of the submission, its sha256 computed now (hashing a large folder takes time)."""
        if self.path is None:
            raise FairbenchError(f"{self.name}: a generator in memory is no submission a result can name")
        return Submission(self.kind, self.name, str(self.path), sha256_path(self.path))


def samples_from_generator(
    model: nn.Module,
    task: TaskSpec,
    n: int | None = None,
    seed: int | None = None,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    judge: Judge | None = None,
    source: str = "generator",
) -> Samples:
    """`n` samples (default: the task's) of a generator, with the task's sampling seed unless `seed` is given,
    conditioned as the task asks (equal counts per condition, or none)."""
    n = task.sampling.n_samples if n is None else n
    if n < 1:
        raise FairbenchError(f"{source}: the number of samples must be positive, got {n}")
    seed = task.sampling.seed if seed is None else seed
    images, conditions = sampling.generate(
        model, n, seed, task.image_shape, task.num_classes if task.conditional else 0, device=device, source=source,
        progress=progress,
    )
    samples = Samples(images, conditions, None, task, "generator", source, None, seed, int(model.latent_dim))
    return samples if judge is None else with_judge_labels(samples, judge, device)


def samples_from_checkpoint(
    path: str | Path,
    task: TaskSpec | None = None,
    n: int | None = None,
    seed: int | None = None,
    device: torch.device | str = "cpu",
    progress: Progress | None = None,
    judge: Judge | None = None,
    checkpoint: ckpt_io.GeneratorCheckpoint | None = None,
) -> Samples:
    """The checkpoint's generator, rebuilt on `device` and sampled (`samples_from_generator`). `task` defaults to
    the one the checkpoint names; `checkpoint`, when the caller has already loaded the file, is not read again."""
    path = Path(path)
    ckpt = ckpt_io.load_checkpoint(path) if checkpoint is None else checkpoint
    if task is None:
        try:
            task = get_task(ckpt.task)
        except FairbenchError as exc:
            raise FairbenchError(f"{path}: {exc}") from None
    model = ckpt_io.build_generator(ckpt, path, device)
    samples = samples_from_generator(model, task, n, seed, device, progress, judge, source=str(path))
    return dataclasses.replace(samples, kind="checkpoint", name=ckpt.method, path=path)


def samples_from_imageset(
    path: str | Path, task: TaskSpec, judge: Judge | None = None, device: torch.device | str | None = None
) -> Samples:
    """An `.npz` or a folder of images, as submitted (`imagesets.load_image_set` checks it against the task)."""
    path = Path(path)
    image_set = imagesets.load_image_set(task, path)
    kind = "folder" if path.is_dir() else "npz"
    name = path.stem if kind == "npz" else path.name
    samples = Samples(image_set.images, image_set.labels, None, task, kind, name, path, None)
    return samples if judge is None else with_judge_labels(samples, judge, device)


def samples_from(
    path: str | Path,
    task: TaskSpec | None = None,
    n: int | None = None,
    seed: int | None = None,
    device: torch.device | str = "cpu",
    judge: Judge | None = None,
) -> Samples:
    """A folder or `.npz` as an image set (which needs its task), anything else as a checkpoint."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() == ".npz":
        if task is None:
            raise FairbenchError(f"{path}: an image set does not say its task; name the task")
        if n is not None or seed is not None:
            raise FairbenchError(f"{path}: an image set is scored as submitted; it takes no sample count or seed")
        return samples_from_imageset(path, task, judge, device)
    return samples_from_checkpoint(path, task, n, seed, device, judge=judge)


def judge_groups(judge: Judge, images: torch.Tensor, device: torch.device | str | None = None) -> np.ndarray:
    """The judge's group per image, its network first moved to `device` (None: left where it is)."""
    if device is not None:
        judge.net.to(device)
    return judge.predict(images)


def with_judge_labels(samples: Samples, judge: Judge, device: torch.device | str | None = None) -> Samples:
    """The same samples with the judge's group per image."""
    return dataclasses.replace(samples, groups=judge_groups(judge, samples.images, device))
