"""Reading a task: YAML to a `TaskSpec`, strictly (unknown keys are errors), then checked as a whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fairbench.errors import FairbenchError
from fairbench.results.names import BRISQUE, CLIPIQA, EQFACE, FID, FID_BALANCED, FID_INTRA, KID, NIQE, PRDC, VENDI
from fairbench.checked_dataclasses import from_dict
from fairbench.task_registry.spec import SplitSpec, TaskSpec


def parse_task(data: Any, where: str) -> TaskSpec:
    spec = from_dict(TaskSpec, data, where)
    _validate(spec, where)
    return spec


def load_task_file(path: str | Path) -> TaskSpec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FairbenchError(f"{path}: cannot read task file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise FairbenchError(f"{path}: not valid YAML ({first})") from None
    return parse_task(data, str(path))


def _validate(spec: TaskSpec, where: str) -> None:
    from fairbench import data, transforms  # late: these import torch

    if spec.version < 1:
        raise FairbenchError(f"{where}: version must be >= 1")
    shape = spec.dataset.image_shape
    if len(shape) != 3 or shape[0] not in (1, 3) or min(shape) < 1:
        raise FairbenchError(f"{where}: dataset.image_shape must be [C, H, W] with C 1 or 3, got {shape}")
    if len(spec.groups.names) < 2 or len(set(spec.groups.names)) != len(spec.groups.names):
        raise FairbenchError(f"{where}: groups.names needs at least two distinct names")
    if spec.dataset.num_classes < 1:
        raise FairbenchError(f"{where}: dataset.num_classes must be >= 1")
    if spec.dataset.class_names is not None and len(spec.dataset.class_names) != spec.dataset.num_classes:
        raise FairbenchError(f"{where}: dataset.class_names must have num_classes entries")
    if spec.judge.kind == "pinned":  # a user-supplied judge has no pin: its sha256 goes in each result
        _validate_pin(spec.judge.sha256, spec.judge.trained_on_first_use, f"{where}: judge")
    if spec.judge.arch is not None:
        from fairbench.networks.archs import JUDGE_ARCHS  # late: imports torch

        try:
            JUDGE_ARCHS.get(spec.judge.arch)
        except FairbenchError as exc:
            raise FairbenchError(f"{where}.judge.arch: {exc}") from None
    names = ("train", "judge", "test")
    present = [name for name in names if getattr(spec.dataset, name) is not None]
    if present and len(present) != 3:
        raise FairbenchError(f"{where}: dataset needs all of train, judge and test splits, or none (no training data)")
    if not present and (spec.transform is not None or spec.training is not None):
        raise FairbenchError(f"{where}: a task without dataset splits has no transform and no training section")
    if present and (spec.transform is None or spec.training is None):
        raise FairbenchError(f"{where}: a task with training data needs a transform and a training section")
    for name in present:
        split: SplitSpec = getattr(spec.dataset, name)
        if not 0 <= split.start < split.stop:
            raise FairbenchError(f"{where}: dataset.{name} needs 0 <= start < stop")
    # Methods never see the judge's or the test images: slices of the same part must not overlap.
    for i, a in enumerate(present):
        for b in present[i + 1 :]:
            sa, sb = getattr(spec.dataset, a), getattr(spec.dataset, b)
            if (a, b) == ("train", "judge") and spec.dataset.judge_overlaps_train:
                continue
            if sa.part == sb.part and sa.start < sb.stop and sb.start < sa.stop:
                raise FairbenchError(
                    f"{where}: dataset.{a} [{sa.start}, {sa.stop}) and dataset.{b} [{sb.start}, {sb.stop}) "
                    f"overlap in part {sa.part!r}"
                )
    if spec.quality is not None:
        _validate_quality(spec, where)
    if spec.sampling.n_samples < 1:
        raise FairbenchError(f"{where}: sampling.n_samples must be positive")
    training = spec.training
    if training is not None and (training.steps < 1 or training.batch_size < 1 or training.checkpoint_every < 1):
        raise FairbenchError(f"{where}: training.steps, batch_size and checkpoint_every must be positive")
    if spec.judge.epochs < 1 or spec.judge.width < 1:
        raise FairbenchError(f"{where}: judge.epochs and judge.width must be positive")
    _validate_judge_ref(spec, where)
    if spec.bootstrap.n_resamples < 1:
        raise FairbenchError(f"{where}: bootstrap.n_resamples must be positive")
    try:
        data.SOURCES.get(spec.dataset.source)
    except FairbenchError as exc:
        raise FairbenchError(f"{where}.dataset.source: {exc}") from None
    if spec.transform is not None:
        try:
            transforms.TRANSFORMS.get(spec.transform.kind)
        except FairbenchError as exc:
            raise FairbenchError(f"{where}.transform.kind: {exc}") from None
        transforms.parse_params(spec.transform, f"{where}.transform")


def _validate_judge_ref(spec: TaskSpec, where: str) -> None:
    from fairbench.judges import JUDGE_KINDS  # late: imports torch

    try:
        JUDGE_KINDS.get(spec.judge.kind)
    except FairbenchError as exc:
        raise FairbenchError(f"{where}.judge.kind: {exc}") from None
    if spec.judge.kind != "pinned" and spec.judge.trained_on_first_use:
        raise FairbenchError(f"{where}.judge: only fairbench's own (pinned) judges can be trained on first use")


def _validate_pin(sha256: str | None, first_use: bool, what: str) -> None:
    """Weights are either pinned by sha256 or declared trained on first use, never both, never neither."""
    if first_use and sha256 is not None:
        raise FairbenchError(f"{what}: give sha256 or trained_on_first_use, not both")
    if not first_use and (sha256 is None or len(sha256) != 64):
        raise FairbenchError(f"{what}: needs a sha256 (64 hex characters) or trained_on_first_use: true")


QUALITY_METRICS = (FID, FID_BALANCED, FID_INTRA, KID, PRDC, VENDI)
IQA_METRICS = (NIQE, BRISQUE, CLIPIQA, EQFACE)


def _validate_quality(spec: TaskSpec, where: str) -> None:
    quality = spec.quality
    assert quality is not None
    for name in ("feature_network", "gpu_feature_network"):
        ref = getattr(quality, name)
        if ref is not None:
            _validate_pin(ref.sha256, ref.trained_on_first_use, f"{where}: quality.{name} ({ref.id})")
    ref, train = quality.reference, spec.dataset.train
    if not 0 <= ref.start < ref.stop:
        raise FairbenchError(f"{where}: quality.reference needs 0 <= start < stop")
    grouped = sorted(set(quality.metrics) & {FID_BALANCED, FID_INTRA, PRDC})
    if spec.transform is None and grouped:
        raise FairbenchError(f"{where}: {' and '.join(grouped)} need reference images with known groups (a transform)")
    if train is not None and ref.part == train.part and ref.start < train.stop and train.start < ref.stop:
        raise FairbenchError(f"{where}: quality.reference overlaps dataset.train: methods would have seen it")
    for name in quality.metrics:
        if name not in QUALITY_METRICS:
            raise FairbenchError(f"{where}: quality.metrics: unknown {name!r} (known: {', '.join(QUALITY_METRICS)})")
    for name in quality.iqa:
        if name not in IQA_METRICS:
            raise FairbenchError(f"{where}: quality.iqa: unknown {name!r} (known: {', '.join(IQA_METRICS)})")
    if quality.n_resamples < 1 or quality.kid_subsets < 1:
        raise FairbenchError(f"{where}: quality.n_resamples and quality.kid_subsets must be positive")
