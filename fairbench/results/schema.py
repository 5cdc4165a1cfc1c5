"""The result JSON's shape: one file per scored run, carrying its own provenance (`SCHEMA` names the version)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "fairbench-result/1"


@dataclass(frozen=True)
class Submission:
    kind: str  # "checkpoint" | "npz" | "folder"
    name: str  # the method for checkpoints, the file or folder name otherwise (the entry name of an image set)
    path: str
    sha256: str


@dataclass(frozen=True)
class JudgeInfo:
    id: str
    sha256: str
    accuracy: float | None  # None: a user-supplied judge (e.g. FairFace) never measured on the task's images
    confusion: list[list[float]] | None  # None: no confusion matrix, so no corrected metrics
    confusion_counts: list[list[int]] | None = None  # the held-out counts the corrected intervals use


@dataclass(frozen=True)
class ScoreResult:
    task: str
    task_version: int
    task_hash: str
    method: str | None
    submission: Submission
    seed: int | None  # training seed of a checkpoint
    train: dict[str, Any] | None
    n_samples: int
    sampling_seed: int | None  # None for image sets: their samples are given
    groups: list[str]
    group_proportions: dict[str, list[float]]  # {"observed": p-hat, "corrected": p-tilde}
    group_counts: list[int]
    metrics: dict[str, dict[str, Any]]  # name -> {"value", "ci95", "higher_is_better"}
    per_condition: dict[str, Any] | None
    judge: JudgeInfo
    bootstrap: dict[str, int]
    versions: dict[str, str]
    device: str
    git_revision: str | None
    created: str
    elapsed_s: float
    per_group: dict[str, dict[str, Any]] | None = None  # quality metric -> group -> {value, ci95, ...} or None
    # The feature network's floor on the whole reference (FD of two disjoint halves): {"value", "n_halves",
    # "reference_counts"}; per group it is per_group["fid_floor"]. None in files older than it, or unscored.
    fid_floor: dict[str, Any] | None = None
    feature_network: dict[str, Any] | None = None  # id, sha256, dim, resize_rule of the FID feature network
    iqa_weights: dict[str, dict[str, str]] = field(default_factory=dict)  # IQA metric -> {asset id: sha256}
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed
    # group name -> {"count", "observed": {"value", "ci95"}, "corrected": {...}}; intervals simultaneous 95%
    group_shares: dict[str, dict[str, Any]] | None = None
    # "uniform", "uniform_corrected" (and "*_cond_worst", "*_per_condition") -> p-values of "the generator is fair"
    fairness_tests: dict[str, Any] | None = None
    # {"source", "format", "sha256": {part: content hash}} for sources that can tell (fairbench.data.data_source);
    # a board never compares results whose data differ (e.g. CIFAR-10's original pixels and a JPEG copy).
    data_source: dict[str, Any] | None = None
    # The leaderboard entry (fairbench.entry_identity): the method's full resolved config, its hash, what differs from
    # the defaults (None when unknown), and a name given with --name (None: derived from the rest).
    config: dict[str, Any] | None = None
    config_hash: str | None = None
    config_changed: dict[str, Any] | None = None
    name: str | None = None
    # The share of samples the task's networks cannot place and the calibration behind it
    # (fairbench.scoring.recognisable); a null share with `not_checked` (why) when the run could not be
    # checked; None in files older than the check.
    recognisable: dict[str, Any] | None = None
    schema: str = SCHEMA

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {"schema": data.pop("schema"), **data}
