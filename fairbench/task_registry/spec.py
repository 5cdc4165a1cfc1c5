"""Task specs as typed, frozen dataclasses, and the hashes that tie every result to the exact spec it used."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

from fairbench.errors import FairbenchError
from fairbench.results.names import FID, FID_BALANCED, FID_INTRA, KID, PRDC, VENDI

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
    arch: str | None = None  # a registered judge architecture (fairbench.networks.archs.JUDGE_ARCHS); None: the small CNN
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
    """The quality half of the score card (README "Quality metrics").

    `reference` is a split no method trains on, grouped like the *training* split (same minority fraction),
    so plain `fid` shows what an imbalanced reference rewards and `fid_balanced` corrects it.
    """

    feature_network: FeatureRef
    reference: SplitSpec
    metrics: list[str] = field(default_factory=lambda: [FID, FID_BALANCED, FID_INTRA, KID, PRDC, VENDI])
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
    if isinstance(data.get("quality"), dict):
        data["quality"]["metrics"] = [m for m in data["quality"]["metrics"] if m not in _UNHASHED_METRICS]
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


# Quality metrics added after tasks were first hashed. Each only adds result keys and changes no value of
# the others, so listing it leaves the hash as it was: results scored before it board beside newer ones,
# with "—" where they lack it, and checkpoints, caches and sweeps keyed by the hash stay valid.
_UNHASHED_METRICS = (PRDC, VENDI)

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
