"""Reading result files: every `fairbench-result/1` JSON under a folder becomes a checked `ResultRecord`.

Every problem is a one-line FairbenchError naming the file. Only the fields the leaderboard needs are read and
checked; any other top-level field (`groups`, `per_condition`, `fairness_tests`, `group_shares`, ...) is
ignored, so result files may grow new fields without breaking older leaderboards. A metric is any entry of
`metrics` with `value`, `ci95` and `higher_is_better`, whatever its name.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairbench import entry_identity
from fairbench.errors import FairbenchError
from fairbench.results.io import result_paths
from fairbench.results.schema import SCHEMA as RESULT_SCHEMA


@dataclass(frozen=True)
class RecordMetric:
    """One metric of one run as stored in a result file; `value` is None when the run could not compute it."""

    value: float | None
    ci95: tuple[float, float] | None
    higher_is_better: bool


@dataclass(frozen=True)
class ResultRecord:
    path: Path
    task: str
    task_version: int
    task_hash: str
    entry: str  # the entry's readable name before disambiguation (fairbench.entry_identity): given, or derived
    seed: int | None
    metrics: dict[str, RecordMetric]
    train: dict[str, Any] | None
    n_samples: int
    is_method: bool = True  # False for submissions without a method (image sets, TorchScript generators)
    feature_network: dict[str, Any] | None = None
    # IQA metric -> {asset id: sha256} of the weight files its value came from; empty in files older than it.
    iqa_weights: dict[str, dict[str, str]] = field(default_factory=dict)
    # The data the run was scored on ({"source", "format", "sha256"}); None in files older than it and for
    # sources that cannot tell. Results on different data (a JPEG copy of CIFAR-10) are never compared.
    data_source: dict[str, Any] | None = None
    judge_sha256: str | None = None  # the judge file it was scored with (None only in malformed older files)
    method: str | None = None
    config: dict[str, Any] | None = None  # the method's resolved config; None in files older than it
    config_hash: str | None = None
    name_given: bool = False  # the name came from --name (never altered to tell entries apart)
    submission_sha256: str | None = None
    # group -> observed (judged) share, from `groups` and `group_proportions.observed`; None when not recorded
    shares: dict[str, float] | None = None
    # group -> the simultaneous 95% bounds of that share (`group_shares`); None in files older than them
    share_bounds: dict[str, tuple[float, float]] | None = None
    # The share of samples the task's networks cannot place (`recognisable`, fairbench.scoring.recognisable);
    # None when not checked: files older than the check, or the run says why (`recognisable_skipped`).
    unrecognisable_share: float | None = None
    recognisable_key: str | None = None  # its calibration's key: one rule, data and networks per board
    real_flagged_share: float | None = None  # real held-out images the same rule flags
    recognisable_skipped: str | None = None

    @property
    def steps(self) -> int | None:
        value = (self.train or {}).get("steps")
        return int(value) if _is_int(value) else None

    @property
    def batch_size(self) -> int | None:
        value = (self.train or {}).get("batch_size")
        return int(value) if _is_int(value) else None

    @property
    def key(self) -> tuple[Any, ...]:
        """Runs merge into one entry exactly when their keys are equal: same name, method, config, steps and
        batch size; an image set (no method) is told apart by its submission's sha256."""
        if not self.is_method:
            return (self.entry, None, self.submission_sha256)
        return (self.entry, self.method, self.config_hash, self.steps, self.batch_size)


def read_results(results_dir: Path) -> list[ResultRecord]:
    """Load every `*.json` under `results_dir` (recursively, hidden names and report sidecars skipped), sorted
    by path."""
    root = Path(results_dir)
    if not root.is_dir():
        raise FairbenchError(f"results directory {root} does not exist or is not a directory")
    paths = result_paths(root)
    if not paths:
        raise FairbenchError(f"no result files in {root}")
    return [read_result(p) for p in paths]


def read_result(path: Path) -> ResultRecord:
    """Parse and check one result file; every problem is a one-line FairbenchError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FairbenchError(f"{path}: cannot read result file ({_one_line(exc)})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FairbenchError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    return _parse_record(path, data)


def _parse_record(path: Path, data: Any) -> ResultRecord:
    def fail(problem: str) -> FairbenchError:
        return FairbenchError(f"{path}: {problem}")

    if not isinstance(data, dict):
        raise fail(f"expected a JSON object, got {type(data).__name__}")
    schema = data.get("schema")
    if schema != RESULT_SCHEMA:
        raise fail(f"schema is {schema!r}, expected {RESULT_SCHEMA!r}")
    for key in ("task", "task_version", "task_hash", "method", "seed", "n_samples", "metrics"):
        if key not in data:
            raise fail(f"missing required field {key!r}")

    task = data["task"]
    if not isinstance(task, str) or not task:
        raise fail("field 'task' must be a non-empty string")
    task_version = data["task_version"]
    if not _is_int(task_version):
        raise fail("field 'task_version' must be an integer")
    task_hash = data["task_hash"]
    if not _is_sha256(task_hash):
        raise fail("field 'task_hash' must be 64 lowercase hex characters (a sha256)")

    method = data["method"]
    submission = data.get("submission")
    submission_sha = submission.get("sha256") if isinstance(submission, dict) else None
    config, digest, changed, given = _parse_entry_fields(data, fail)
    if method is not None:
        if not isinstance(method, str) or not method:
            raise fail("field 'method' must be a non-empty string or null")
        entry = given or entry_identity.derived_name(method, changed, digest)
    else:
        name = submission.get("name") if isinstance(submission, dict) else None
        if not given and (not isinstance(name, str) or not name):
            raise fail("field 'method' is null and 'submission.name' is missing; cannot name the entry")
        entry = given or name

    seed = data["seed"]
    if seed is not None and not _is_int(seed):
        raise fail("field 'seed' must be an integer or null")
    n_samples = data["n_samples"]
    if not _is_int(n_samples) or n_samples <= 0:
        raise fail("field 'n_samples' must be a positive integer")

    train = data.get("train")
    if train is not None and not isinstance(train, dict):
        raise fail("field 'train' must be an object or null")
    feature_network = data.get("feature_network")
    if feature_network is not None and not isinstance(feature_network, dict):
        raise fail("field 'feature_network' must be an object or null")
    iqa_weights = _parse_iqa_weights(data.get("iqa_weights"), fail)
    data_source = data.get("data_source")
    if data_source is not None and not isinstance(data_source, dict):
        raise fail("field 'data_source' must be an object or null")
    judge = data.get("judge")
    judge_sha256 = judge.get("sha256") if isinstance(judge, dict) else None
    if judge_sha256 is not None and not _is_sha256(judge_sha256):
        raise fail("field 'judge.sha256' must be 64 lowercase hex characters (a sha256)")

    raw_metrics = data["metrics"]
    if not isinstance(raw_metrics, dict) or not raw_metrics:
        raise fail("field 'metrics' must be a non-empty object")
    metrics: dict[str, RecordMetric] = {}
    for name in sorted(raw_metrics):
        metrics[name] = _parse_metric(raw_metrics[name], f"metrics.{name}", fail)

    return ResultRecord(
        path=path,
        task=task,
        task_version=int(task_version),
        task_hash=task_hash,
        entry=entry,
        seed=None if seed is None else int(seed),
        metrics=metrics,
        train=train,
        n_samples=int(n_samples),
        is_method=method is not None,
        feature_network=feature_network,
        iqa_weights=iqa_weights,
        data_source=data_source,
        judge_sha256=judge_sha256,
        method=method,
        config=config,
        config_hash=digest,
        name_given=given is not None,
        submission_sha256=submission_sha if isinstance(submission_sha, str) else None,
        shares=_parse_shares(data),
        share_bounds=_parse_share_bounds(data),
        **_parse_recognisable(data, fail),
    )


def _parse_recognisable(data: dict[str, Any], fail: Any) -> dict[str, Any]:
    """The quality gate's inputs: the unrecognisable share, its calibration key and real flagged rate; or,
    for a run that could not be checked, why (`not_checked`). All None in files older than the check."""
    raw = data.get("recognisable")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise fail("field 'recognisable' must be an object or null")
    share = raw.get("unrecognisable_share")
    if share is None:
        why = raw.get("not_checked")
        if not isinstance(why, str) or not why:
            raise fail("field 'recognisable' has no unrecognisable_share and does not say why (not_checked)")
        return {"recognisable_skipped": why}
    calibration = raw.get("calibration")
    key = calibration.get("key") if isinstance(calibration, dict) else None
    real = calibration.get("real_flagged_share") if isinstance(calibration, dict) else None
    if not (_is_number(share) and 0 <= share <= 1 and _is_sha256(key) and _is_number(real)):
        raise fail("field 'recognisable' must hold unrecognisable_share in [0, 1] and calibration.key "
                   "(a sha256) and calibration.real_flagged_share")
    return {"unrecognisable_share": float(share), "recognisable_key": key, "real_flagged_share": float(real)}


def _parse_shares(data: dict[str, Any]) -> dict[str, float] | None:
    """Observed share per group; None unless both fields are there and agree in length (they are display only)."""
    groups = data.get("groups")
    props = data.get("group_proportions")
    observed = props.get("observed") if isinstance(props, dict) else None
    if not (isinstance(groups, list) and isinstance(observed, list) and len(groups) == len(observed) and groups):
        return None
    if not all(isinstance(g, str) for g in groups) or not all(_is_number(p) for p in observed):
        return None
    return {g: float(p) for g, p in zip(groups, observed)}


def _parse_share_bounds(data: dict[str, Any]) -> dict[str, tuple[float, float]] | None:
    """Observed share bounds per group from `group_shares`; None unless every group has two numbers."""
    shares = data.get("group_shares")
    groups = data.get("groups")
    if not isinstance(shares, dict) or not isinstance(groups, list):
        return None
    out = {}
    for group in groups:
        ci = ((shares.get(group) or {}).get("observed") or {}).get("ci95") if isinstance(group, str) else None
        if not (isinstance(ci, list) and len(ci) == 2 and all(_is_number(v) for v in ci)):
            return None
        out[group] = (float(ci[0]), float(ci[1]))
    return out


def _parse_entry_fields(data: dict[str, Any], fail: Any) -> tuple[Any, str | None, Any, str | None]:
    """(config, config_hash, config_changed, given name); each None in files written before them."""
    config, digest, changed, name = (data.get(k) for k in ("config", "config_hash", "config_changed", "name"))
    if config is not None and not isinstance(config, dict):
        raise fail("field 'config' must be an object or null")
    if digest is not None and not _is_sha256(digest):
        raise fail("field 'config_hash' must be 64 lowercase hex characters (a sha256)")
    if config is not None and digest is None:
        raise fail("field 'config' is set but 'config_hash' is missing")
    if config is not None and entry_identity.config_hash(config) != digest:
        raise fail("field 'config_hash' is not the hash of 'config'")
    if changed is not None and not isinstance(changed, dict):
        raise fail("field 'config_changed' must be an object or null")
    if name is not None:
        if not isinstance(name, str):
            raise fail("field 'name' must be a string or null")
        try:
            entry_identity.check_name(name)
        except FairbenchError as exc:
            raise fail(f"field 'name': {exc}") from None
    return config, digest, changed, name


# Metric names and asset ids as fairbench writes them; anything else could make the CSV's compact
# `metric=asset:sha;...` string ambiguous.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _parse_iqa_weights(raw: Any, fail: Any) -> dict[str, dict[str, str]]:
    """{IQA metric: {asset id: sha256}}; optional, since files written before the field lack it (null reads alike)."""
    if raw is None:
        return {}
    shape = "field 'iqa_weights' must be an object of {asset id: sha256} objects"
    if not isinstance(raw, dict):
        raise fail(shape)
    out: dict[str, dict[str, str]] = {}
    for metric in sorted(raw):
        weights = raw[metric]
        if not _NAME.fullmatch(metric) or not isinstance(weights, dict):
            raise fail(f"{shape}; bad entry {metric!r}")
        for asset_id in sorted(weights):
            if not _NAME.fullmatch(asset_id) or not _is_sha256(weights[asset_id]):
                raise fail(f"iqa_weights.{metric}.{asset_id} must be 64 lowercase hex characters (a sha256)")
        out[metric] = {asset_id: weights[asset_id] for asset_id in sorted(weights)}
    return out


def _parse_metric(raw: Any, where: str, fail: Any) -> RecordMetric:
    if not isinstance(raw, dict):
        raise fail(f"{where} must be an object with value, ci95 and higher_is_better")
    for key in ("value", "higher_is_better"):
        if key not in raw:
            raise fail(f"{where} is missing {key!r}")
    value = raw["value"]
    if value is not None and not _is_number(value):
        raise fail(f"{where}.value must be a number or null")
    hib = raw["higher_is_better"]
    if not isinstance(hib, bool):
        raise fail(f"{where}.higher_is_better must be true or false")
    ci = raw.get("ci95")
    if ci is not None:
        if not (isinstance(ci, list) and len(ci) == 2 and all(_is_number(c) for c in ci)):
            raise fail(f"{where}.ci95 must be [low, high] or null")
        ci = (float(ci[0]), float(ci[1]))
    # NaN / inf (which Python's json accepts) count as "not computed", exactly like null.
    number = None if value is None or not math.isfinite(float(value)) else float(value)
    return RecordMetric(value=number, ci95=ci, higher_is_better=hib)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_sha256(x: Any) -> bool:
    return isinstance(x, str) and len(x) == 64 and all(c in "0123456789abcdef" for c in x)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
