"""Task specs: typed, versioned, hashed, loaded from `tasks/*.yaml` (shipped inside the wheel)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from fairbench.errors import FairbenchError
from fairbench.registry import unknown_name_message
from fairbench.strict import from_dict

# Keys that do not change what a score means (prose, and the default budget for training a reference
# method); left out of the hash so editing them does not orphan existing results.
_UNHASHED_KEYS = ("description", "aliases", "training")
# The part of a spec that decides what a method trains on.
_DATA_KEYS = ("id", "dataset", "groups", "transform", "conditional")
# (section, key, default): optional nested fields dropped from the hash when they hold their default.
_OPTIONAL_NESTED = (
    ("quality", "gpu_feature_network", None),
    ("judge", "kind", "pinned"),
    ("dataset", "train", None),
    ("dataset", "judge", None),
    ("dataset", "test", None),
)


@dataclass(frozen=True)
class SplitSpec:
    """A contiguous slice [start, stop) of one part ("train" / "test") of the source dataset."""

    part: str
    start: int
    stop: int


@dataclass(frozen=True)
class DatasetSpec:
    source: str
    image_shape: list[int]  # [C, H, W]
    num_classes: int
    # None for a task without training data (e.g. ffhq-race: it scores user-supplied pretrained generators
    # and its judge is external); a task that has them states all three.
    train: SplitSpec | None = None  # what methods train on
    judge: SplitSpec | None = None  # what the judge trains on; no method sees it
    test: SplitSpec | None = None  # held out: judge evaluation and the oracle checks
    class_names: list[str] | None = None
    # The judge may train on the methods' training images (a classifier of real images, never a generator:
    # seeing them gives no method an advantage). Off unless a spec says so and why (cifar10-lt).
    judge_overlaps_train: bool = False


@dataclass(frozen=True)
class GroupSpec:
    attribute: str
    names: list[str]


@dataclass(frozen=True)
class TransformSpec:
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JudgeRef:
    id: str
    sha256: str | None = None  # the pinned weights; None when trained on first use or user-supplied
    epochs: int = 3  # how `fairbench judge train` reproduces the pinned weights
    arch: str | None = None  # a registered judge architecture (fairbench.judges.JUDGE_ARCHS); None: the small CNN
    # No file can be shipped (the data cannot be obtained where fairbench is built): the judge is trained,
    # seeded, on the user's data the first time it is needed and cached; results record its sha256 and a board
    # compares only results scored with the identical file.
    trained_on_first_use: bool = False
    width: int = 16  # JudgeNet's channel width
    class_weights: Literal["none", "balanced"] = "none"  # "balanced": loss weighted by 1 / group frequency
    # Which registered judge loader (fairbench.judges.JUDGE_KINDS) reads it: "pinned" (weights fairbench trains:
    # shipped, or trained on first use) or "fairface" (the user-supplied FairFace ResNet-34; its sha256 goes in
    # each result). Left out of the hash at its default.
    kind: str = "pinned"


@dataclass(frozen=True)
class SamplingSpec:
    n_samples: int
    seed: int


@dataclass(frozen=True)
class BootstrapSpec:
    n_resamples: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class FeatureRef:
    id: str
    sha256: str | None = None  # None only when trained_on_first_use (see JudgeRef)
    trained_on_first_use: bool = False


@dataclass(frozen=True)
class QualitySpec:
    """The quality half of the score card (DESIGN.md section 6).

    `reference` is a split no method trains on, grouped like the *training* split (same minority fraction),
    so plain `fid` shows what an imbalanced reference rewards and `fid_balanced` corrects it.
    """

    feature_network: FeatureRef
    reference: SplitSpec
    metrics: list[str] = field(default_factory=lambda: ["fid", "fid_balanced", "fid_intra", "kid"])
    iqa: list[str] = field(default_factory=list)  # no-reference IQA (niqe, brisque, clipiqa; eqface for faces); off for digits
    n_resamples: int = 100  # bootstrap resamples for FID intervals
    kid_subsets: int = 100
    seed: int = 0  # balanced-reference subsampling and KID subsets
    # Used instead of `feature_network` when scoring runs on a CUDA device (e.g. `clip`: seconds there, too slow
    # for 2 CPU cores). Results record which one scored them; `fairbench score --feature-network` overrides both.
    gpu_feature_network: FeatureRef | None = None


@dataclass(frozen=True)
class TrainingDefaults:
    steps: int
    batch_size: int = 64
    checkpoint_every: int = 500


@dataclass(frozen=True)
class TaskSpec:
    id: str
    version: int
    dataset: DatasetSpec
    groups: GroupSpec
    conditional: bool
    judge: JudgeRef
    sampling: SamplingSpec
    transform: TransformSpec | None = None  # None: real images carry no known group (no training data)
    training: TrainingDefaults | None = None  # None: nothing to train on (no dataset.train split)
    bootstrap: BootstrapSpec = BootstrapSpec()
    quality: QualitySpec | None = None
    description: str = ""
    aliases: list[str] = field(default_factory=list)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.dataset.image_shape
        return c, h, w

    @property
    def n_groups(self) -> int:
        return len(self.groups.names)

    @property
    def num_classes(self) -> int:
        return self.dataset.num_classes

    @property
    def class_names(self) -> list[str]:
        return self.dataset.class_names or [str(i) for i in range(self.dataset.num_classes)]

    def split_spec(self, name: str) -> SplitSpec:
        """"train", "judge", "test", or the quality "reference" split."""
        if name == "reference":
            if self.quality is None:
                raise FairbenchError(f"task {self.id} defines no quality metrics, so no reference split")
            return self.quality.reference
        if name not in ("train", "judge", "test"):
            raise FairbenchError(f"task {self.id}: unknown split {name!r}")
        split = getattr(self.dataset, name)
        if split is None:
            raise FairbenchError(
                f"task {self.id} has no {name} split: it has no training data (it scores user-supplied "
                f"pretrained generators)"
            )
        return split

    @property
    def has_training_data(self) -> bool:
        return self.dataset.train is not None

    @property
    def task_hash(self) -> str:
        return task_hash(self)

    @property
    def data_hash(self) -> str:
        """Hash of what a method trains on (dataset, groups, transform, conditioning): a checkpoint stays
        scorable when only the scoring protocol (judge, samples, metrics) of its task changes."""
        return task_hash(self, only=_DATA_KEYS)

    def summary(self) -> dict[str, Any]:
        """The fields `fairbench tasks --json` promises."""
        return {
            "id": self.id,
            "version": self.version,
            "task_hash": self.task_hash,
            "aliases": list(self.aliases),
            "groups": list(self.groups.names),
            "attribute": self.groups.attribute,
            "conditional": self.conditional,
            "num_classes": self.num_classes,
            "image_shape": list(self.image_shape),
            "source": self.dataset.source,
            "description": self.description,
        }


def task_hash(spec: TaskSpec, only: tuple[str, ...] | None = None) -> str:
    """sha256 of the canonical JSON of the resolved spec (or of just the keys in `only`)."""
    from fairbench import transforms  # late, like _validate

    data = dataclasses.asdict(spec)
    for key in _UNHASHED_KEYS:
        data.pop(key, None)
    if only is not None:
        data = {k: v for k, v in data.items() if k in only}
    data = {k: v for k, v in data.items() if v is not None}  # an absent optional section hashes as before
    _drop_new_defaults(data)  # likewise optional fields added later, left at their defaults
    for key, default in (("width", 16), ("class_weights", "none")):  # judge options added later, likewise
        if isinstance(data.get("judge"), dict) and data["judge"].get(key) == default:
            data["judge"].pop(key)
    for section, key, default in _OPTIONAL_NESTED:
        if isinstance(data.get(section), dict) and data[section].get(key, default) == default:
            data[section].pop(key, None)
    # Hash the resolved transform parameters (defaults filled in, numbers typed), not the YAML as written:
    # `white_probability: 1` and `1.0`, or an omitted default, mean the same task and must hash the same.
    if spec.transform is not None and "transform" in data:
        params = transforms.parse_params(spec.transform, f"task {spec.id}.transform")
        data["transform"]["params"] = dataclasses.asdict(params)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# Fields added after tasks were first hashed: at their default they are left out, so older specs keep their hash.
_NEW_FIELD_DEFAULTS: dict[str, Any] = {
    "gpu_feature_network": None, "judge_overlaps_train": False, "arch": None, "trained_on_first_use": False,
}


def _drop_new_defaults(node: Any) -> None:
    if isinstance(node, dict):
        for key, default in _NEW_FIELD_DEFAULTS.items():
            if key in node and node[key] == default:
                del node[key]
        for value in node.values():
            _drop_new_defaults(value)


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
        from fairbench.judges import JUDGE_ARCHS  # late: judges imports this module

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


QUALITY_METRICS = ("fid", "fid_balanced", "fid_intra", "kid")
IQA_METRICS = ("niqe", "brisque", "clipiqa", "eqface")


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
    if spec.transform is None and set(quality.metrics) & {"fid_balanced", "fid_intra"}:
        raise FairbenchError(f"{where}: fid_balanced and fid_intra need reference images with known groups (a transform)")
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


def _builtin_task_dir() -> Path:
    try:
        root = resources.files("fairbench._tasks")
        path = Path(str(root))
        if path.is_dir():
            return path
    except (ModuleNotFoundError, NotADirectoryError, TypeError):
        pass
    return Path(__file__).resolve().parent.parent / "tasks"  # running from a source checkout


@cache
def builtin_tasks() -> dict[str, TaskSpec]:
    specs: dict[str, TaskSpec] = {}
    for path in sorted(_builtin_task_dir().glob("*.yaml")):
        spec = load_task_file(path)
        if spec.id in specs:
            raise FairbenchError(f"{path}: task id {spec.id!r} is defined twice")
        specs[spec.id] = spec
    return specs


def _aliases() -> dict[str, str]:
    table: dict[str, str] = {}
    for spec in builtin_tasks().values():
        for alias in spec.aliases:
            table[alias] = spec.id
    return table


def resolve_task_id(name: str) -> str:
    specs = builtin_tasks()
    if name in specs:
        return name
    aliases = _aliases()
    if name in aliases:
        return aliases[name]
    raise FairbenchError(unknown_name_message("task", name, [*specs, *aliases]))


def get_task(name_or_path: str | Path) -> TaskSpec:
    """A task by id, alias, or path to a YAML file."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")):
        return load_task_file(text)
    return builtin_tasks()[resolve_task_id(text)]


def list_tasks() -> list[TaskSpec]:
    return [builtin_tasks()[k] for k in sorted(builtin_tasks())]
