"""Score a generator checkpoint or an image set against a task: judge, fairness metrics, result JSON."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from fairbench import data, entry_identity, paths
from fairbench.devices import resolve_device
from fairbench.errors import FairbenchError
from fairbench.judges import load_judge
from fairbench.metrics.fairness import FairnessReport, conditional_fairness_report, fairness_report
from fairbench.networks.prepare import prepare
from fairbench.provenance import git_revision, versions
from fairbench.results import JudgeInfo, ScoreResult, Submission
from fairbench.scoring.quality import quality_report, with_feature_network
from fairbench.scoring.recognisable import CRITERION, recognisable_report
from fairbench.submission import checkpoint as ckpt_io
from fairbench.submission.samples import judge_groups, samples_from_checkpoint, samples_from_imageset
from fairbench.task_registry import TaskSpec, get_task

ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class ScoreOptions:
    n_samples: int | None = None  # default: the task's sampling.n_samples
    device: str = "auto"
    progress: ProgressFn | None = None
    data_root: Path | None = None  # for the quality reference split
    ref_stats: Path | None = None  # precomputed reference statistics for `fid`
    feature_network: str | None = None  # FID-family network instead of the task's (quality.select_feature_network)
    note: Callable[[str], None] | None = None  # one-line notices for the user (e.g. weights trained on first use)
    name: str | None = None  # the leaderboard entry's name (--name); overrides one given at training time


def score_checkpoint(
    path: str | Path, options: ScoreOptions = ScoreOptions(), task: TaskSpec | str | None = None
) -> ScoreResult:
    """Sample the checkpoint's generator and score it. `task` is only needed for a custom (YAML) task."""
    started = time.perf_counter()
    if options.name is not None:
        entry_identity.check_name(options.name)
    path = Path(path)
    ckpt = ckpt_io.load_checkpoint(path)
    try:
        task = get_task(ckpt.task if task is None else task) if not isinstance(task, TaskSpec) else task
    except FairbenchError as exc:
        raise FairbenchError(f"{path}: {exc}") from None
    if task.id != ckpt.task:
        raise FairbenchError(f"{path}: made for task {ckpt.task!r}, not {task.id!r}")
    same_data = ckpt.data_hash == task.data_hash if ckpt.data_hash else ckpt.task_hash == task.task_hash
    if not same_data:
        raise FairbenchError(
            f"{path}: trained on task {ckpt.task} as it was defined then (hash {ckpt.task_hash[:12]}…); the installed "
            f"spec trains on different data now; retrain, or score with the fairbench version it was made for"
        )
    device = resolve_device(options.device)
    n = task.sampling.n_samples if options.n_samples is None else options.n_samples
    if n < 1:
        raise FairbenchError("--samples must be positive")
    progress = options.progress
    samples = samples_from_checkpoint(
        path, task, n, device=device, checkpoint=ckpt,
        progress=(lambda d, t: progress("sampling", d, t)) if progress else None,
    )
    result = _score(
        task, samples.images, samples.conditions, samples.submission(), ckpt.method, ckpt.seed, ckpt.train or None,
        samples.seed, options, device, started,
    )
    return _with_entry(result, task, ckpt, options.name)


def _with_entry(result: ScoreResult, task: TaskSpec, ckpt: ckpt_io.GeneratorCheckpoint, name: str | None) -> ScoreResult:
    """Record what makes the run's leaderboard entry: config, its hash, what differs from the defaults, name."""
    if not isinstance(ckpt.config, dict) or not isinstance(ckpt.train or {}, dict):
        raise FairbenchError(f"{result.submission.path}: checkpoint config and train must be mappings")
    train = ckpt.train or {}
    changed = entry_identity.checkpoint_changes(
        ckpt.method, ckpt.config, train,
        None if task.training is None else task.training.batch_size,  # imported generators: no task budget
    )
    given = name if name is not None else train.get("name")
    return dataclasses.replace(
        result,
        config=dict(ckpt.config),
        config_hash=entry_identity.config_hash(ckpt.config),
        config_changed=changed,
        name=None if given is None else entry_identity.check_name(str(given)),
    )


def score_image_set(task: TaskSpec | str, path: str | Path, options: ScoreOptions = ScoreOptions()) -> ScoreResult:
    started = time.perf_counter()
    task = get_task(task) if isinstance(task, str) else task
    path = Path(path)
    samples = samples_from_imageset(path, task)
    submission = samples.submission()
    device = resolve_device(options.device)
    result = _score(task, samples.images, samples.conditions, submission, None, None, None, None, options, device,
                    started)
    return result if options.name is None else dataclasses.replace(result, name=entry_identity.check_name(options.name))


def _score(
    task: TaskSpec,
    images: torch.Tensor,
    labels: torch.Tensor | None,
    submission: Submission,
    method: str | None,
    seed: int | None,
    train: dict | None,
    sampling_seed: int | None,
    options: ScoreOptions,
    device: torch.device,
    started: float,
) -> ScoreResult:
    if options.name is not None:
        entry_identity.check_name(options.name)  # before the work, not after
    quality_task = with_feature_network(task, options.feature_network)  # an unknown id fails before judging
    # The explicit first-use step: networks trained on this data now, so everything below only loads them.
    prepared = prepare(task, options.data_root, options.progress, options.note, quality_task)
    network_problem = prepared.feature_network_problem
    judge = load_judge(task, options.data_root)
    predicted = judge_groups(judge, images, device)
    if options.progress:
        options.progress("judging", len(images), len(images))
    calibration = judge.card.calibration_counts()
    conditions = labels.numpy() if task.conditional and labels is not None else None
    fair = fairness_fields(task, predicted, conditions, judge.confusion, calibration)
    metrics, tests, per_condition = fair.metrics, fair.tests, fair.per_condition
    quality = quality_report(quality_task, images, predicted, device, options.data_root, options.ref_stats,
                             fid_skipped_because=network_problem)  # IQA needs no data
    if options.progress and task.quality is not None:
        options.progress("quality", len(images), len(images))
    metrics.update(quality.metrics)
    recognisable = _recognisable(task, images, judge, options.data_root)
    if options.progress:
        options.progress("recognisable", len(images), len(images))
    card = judge.card
    proportions, shares = fair.proportions, fair.shares
    if judge.confusion is None:  # nothing to correct with: never report p-hat under the corrected names
        skipped_corrected = _drop_corrected(metrics, tests, per_condition, proportions, shares)
        why = getattr(judge, "no_confusion_reason", None) or f"judge {card.id} has no confusion matrix"
        quality.skipped.update({name: why for name in skipped_corrected})
    return ScoreResult(
        task=task.id,
        task_version=task.version,
        task_hash=task.task_hash,
        method=method,
        submission=submission,
        seed=seed,
        train=train,
        n_samples=len(images),
        sampling_seed=sampling_seed,
        groups=list(task.groups.names),
        group_proportions=proportions,
        group_counts=fair.counts,
        group_shares=shares,
        fairness_tests=tests,
        metrics=metrics,
        per_condition=per_condition,
        judge=JudgeInfo(
            card.id, card.sha256, card.accuracy, card.confusion, None if calibration is None else calibration.tolist()
        ),
        bootstrap={"n_resamples": task.bootstrap.n_resamples, "seed": task.bootstrap.seed},
        versions=versions(),
        device=str(device),
        git_revision=git_revision(),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        elapsed_s=round(time.perf_counter() - started, 3),
        per_group=quality.per_group or None,
        fid_floor=quality.fid_floor,
        feature_network=quality.feature_network,
        iqa_weights=quality.iqa_weights,
        skipped=quality.skipped,
        data_source=_data_source(task, options.data_root),
        recognisable=recognisable,
    )


def _recognisable(task: TaskSpec, images: torch.Tensor, judge, data_root: Path | None) -> dict:
    """The share of samples the task's networks cannot place (`scoring.recognisable`), after the quality
    metrics (which may have fetched the data it calibrates on); when the task, its judge or the data on disk
    cannot tell, a null share and why (`not_checked`), so the board marks the run rather than guessing."""
    try:
        return recognisable_report(task, images, judge, data_root)
    except FairbenchError as exc:
        return {"criterion": CRITERION, "unrecognisable_share": None, "not_checked": str(exc)}


def _data_source(task: TaskSpec, data_root: Path | None) -> dict | None:
    """The task's data as found on disk (`data.data_source`), or None when it is not there: fairness needs only
    the judge, so a missing dataset is no reason to fail a score, nor to download one only to hash it."""
    with paths.no_downloads():
        try:
            return data.data_source(task, data_root)
        except FairbenchError:
            return None


@dataclass
class FairnessFields:
    """The fairness part of a result: what scoring writes and what `recompute_fairness` rewrites."""

    metrics: dict
    tests: dict
    per_condition: dict | None
    proportions: dict
    shares: dict
    counts: list[int]


def fairness_fields(
    task: TaskSpec, predicted: np.ndarray, conditions: np.ndarray | None, confusion: np.ndarray | None,
    calibration: np.ndarray | None,
) -> FairnessFields:
    """Every fairness figure of one scored sample set from its judged groups (and conditions)."""
    boot = task.bootstrap
    overall = fairness_report(predicted, task.n_groups, confusion, boot.n_resamples, boot.seed,
                              calibration_counts=calibration)
    metrics = {name: value.to_json() for name, value in overall.metrics.items()}
    tests = {name: t.to_json() for name, t in overall.tests.items()}
    per_condition = None
    if conditions is not None:
        cond = conditional_fairness_report(predicted, conditions, task.n_groups, task.num_classes, confusion,
                                           boot.n_resamples, boot.seed, calibration_counts=calibration)
        metrics.update({name: value.to_json() for name, value in cond.summary.items()})
        tests.update({name: t.to_json() for name, t in cond.tests.items()})
        names = [task.class_names[c] for c in cond.conditions]
        tests.update({f"{name}_per_condition": {c: r.tests[name].p_value for c, r in zip(names, cond.per_condition)}
                      for name in overall.tests})
        per_condition = {
            "conditions": names,
            "counts": [r.counts for r in cond.per_condition],
            "observed": [r.observed for r in cond.per_condition],
            "corrected": [r.corrected for r in cond.per_condition],
            "metrics": {name: [r.metrics[name].to_json() for r in cond.per_condition] for name in overall.metrics},
        }
    proportions = {"observed": overall.observed, "corrected": overall.corrected}
    return FairnessFields(metrics, tests, per_condition, proportions, named_shares(task.groups.names, overall),
                          overall.counts)


def recompute_fairness(result: dict, task: TaskSpec) -> dict:
    """A result's fairness figures computed again from what it records (its judged group counts, per-condition
    counts and the judge's confusion counts), no sampling needed; everything else is kept as it is.

    For results scored before a change of the statistics: the same counts, today's intervals and tests."""
    counts = result["group_counts"]
    judge = result.get("judge") or {}
    confusion = judge.get("confusion")
    calibration = judge.get("confusion_counts")
    if confusion is not None and calibration is None:
        raise FairbenchError("the result records a confusion matrix without its calibration counts")
    per = result.get("per_condition")
    if per is not None:
        index = {name: i for i, name in enumerate(task.class_names)}
        predicted = np.concatenate([np.repeat(np.arange(len(c)), c) for c in per["counts"]])
        conditions = np.concatenate([np.full(sum(c), index[name]) for name, c in zip(per["conditions"], per["counts"])])
    else:
        predicted, conditions = np.repeat(np.arange(len(counts)), counts), None
    fair = fairness_fields(task, predicted.astype(np.int64), None if conditions is None else conditions.astype(np.int64),
                           None if confusion is None else np.asarray(confusion, dtype=np.float64),
                           None if calibration is None else np.asarray(calibration))
    if fair.counts != list(counts):
        raise FairbenchError("the per-condition counts do not add up to the result's group counts")
    out = dict(result)
    out["metrics"] = {**{k: v for k, v in result["metrics"].items() if k not in fair.metrics}, **fair.metrics}
    out["fairness_tests"] = fair.tests
    out["per_condition"] = fair.per_condition
    out["group_proportions"] = fair.proportions
    out["group_shares"] = fair.shares
    if confusion is None:
        _drop_corrected(out["metrics"], out["fairness_tests"], out["per_condition"], out["group_proportions"],
                        out["group_shares"])
    return out


def _drop_corrected(metrics: dict, tests: dict, per_condition: dict | None, proportions: dict, shares: dict) -> list[str]:
    """Remove every judge-error-corrected figure (in place); the names removed, for `skipped`."""
    dropped = sorted(name for name in metrics if "corrected" in name)
    for name in dropped:
        del metrics[name]
    for name in [n for n in tests if "corrected" in n]:
        del tests[name]
    proportions.pop("corrected", None)
    for entry in shares.values():
        entry.pop("corrected", None)
    if per_condition is not None:
        per_condition.pop("corrected", None)
        for name in [n for n in per_condition["metrics"] if "corrected" in n]:
            del per_condition["metrics"][name]
    return dropped + ["group_proportions.corrected"]


def named_shares(groups: list[str], report: FairnessReport) -> dict[str, dict]:
    """Each group's share by name, observed and corrected, with its simultaneous 95% interval and count."""
    out = {}
    for g, name in enumerate(groups):
        out[name] = {"count": report.counts[g]}
        for kind, values in (("observed", report.observed), ("corrected", report.corrected)):
            box = report.shares[kind]
            out[name][kind] = {"value": values[g], "ci95": [box.lower[g], box.upper[g]]}
    return out
