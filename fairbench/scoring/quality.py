"""The quality half of the score card: the FID family on the task's feature network, and no-reference IQA.

Every metric that can be computed is; one that cannot (a missing optional asset or package, a group with
too few samples) is listed in `skipped` with the reason, and never fails the score as a whole.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairbench import data, paths
from fairbench.chunking import SCORE_CHUNK
from fairbench.errors import FairbenchError
from fairbench.tasks import FeatureRef, TaskSpec


@dataclass
class QualityReport:
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {value, ci95, higher_is_better}
    per_group: dict[str, dict[str, dict[str, Any] | None]] = field(default_factory=dict)  # metric -> group -> ...
    feature_network: dict[str, Any] | None = None
    # IQA metric -> {asset id: sha256 of the local file it scored with}: user-supplied weights have no published
    # hash, so two users' values are only comparable when these match.
    iqa_weights: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def _metric(value: float, ci95: tuple[float, float], higher_is_better: bool = False) -> dict[str, Any]:
    return {"value": float(value), "ci95": [float(ci95[0]), float(ci95[1])], "higher_is_better": higher_is_better}


def quality_report(
    task: TaskSpec,
    images: torch.Tensor,
    predicted: np.ndarray,
    device: torch.device,
    data_root: Path | None = None,
    ref_stats: Path | None = None,
    fid_skipped_because: str | None = None,
) -> QualityReport:
    """The FID family on the task's feature network (its GPU one on CUDA; `with_feature_network` picks
    another), then the task's IQA metrics. `fid_skipped_because`: the FID family cannot be scored (its
    network could not be made), and why."""
    report = QualityReport()
    quality = task.quality
    if quality is None:
        return report
    if quality.metrics and fid_skipped_because is not None:
        _skip_fid_family(quality.metrics, report, fid_skipped_because)
    elif quality.metrics:
        ref = select_feature_network(task, None, device)
        _fid_family(task, images, predicted, device, data_root, ref_stats, report, ref)
    for name in quality.iqa:
        _iqa(name, images, predicted, task, device, report)
    return report


def asset_feature_networks() -> dict[str, str]:
    """Network id -> asset id, for the networks whose one weights file the asset manifest pins (so any task can
    name them by id alone)."""
    from fairbench.features import INCEPTION_ASSET
    from fairbench.features.clip import CLIP_ASSET, CLIP_ID

    return {"inception": INCEPTION_ASSET, CLIP_ID: CLIP_ASSET}


def select_feature_network(task: TaskSpec, requested: str | None, device: torch.device | str) -> FeatureRef:
    """The network that scores the FID family: `requested` (`--feature-network`; "task" means none), else the
    task's `gpu_feature_network` on a CUDA device, else its `feature_network`. A requested id is pinned by the
    task when it names it, else by the asset manifest (`inception`, `clip`); results record the choice."""
    quality = task.quality
    if quality is None:
        raise FairbenchError(f"task {task.id} defines no quality metrics, so no feature network")
    if requested in (None, "task"):
        gpu = quality.gpu_feature_network
        return gpu if gpu is not None and torch.device(device).type == "cuda" else quality.feature_network
    for ref in (quality.feature_network, quality.gpu_feature_network):
        if ref is not None and ref.id == requested:
            return ref
    by_asset = asset_feature_networks()
    if requested in by_asset:
        from fairbench.assets import get_asset

        sha256 = get_asset(by_asset[requested]).sha256
        if sha256:
            return FeatureRef(requested, sha256)
    from fairbench.features import FEATURE_NETWORKS

    FEATURE_NETWORKS.get(requested)  # an unknown id: the registry's message, with a suggestion
    raise FairbenchError(
        f"feature network {requested!r} is pinned only by the task that names it, and task {task.id} does not; "
        f"choose 'task' or one of: {', '.join(sorted(by_asset))}"
    )


def with_feature_network(task: TaskSpec, requested: str | None) -> TaskSpec:
    """`task` scored with the network `requested` (`--feature-network`) on every device; itself for None/"task".
    Only the quality protocol changes, so the spec's `task_hash` is the caller's to record (the result keeps
    the installed task's hash and records the network it was scored with)."""
    if requested in (None, "task") or task.quality is None:
        return task
    ref = select_feature_network(task, requested, "cpu")  # an explicit id does not depend on the device
    quality = dataclasses.replace(task.quality, feature_network=ref, gpu_feature_network=None)
    return dataclasses.replace(task, quality=quality)


def fid_metric_keys(metrics: list[str]) -> list[str]:
    """The result keys the task's FID-family metrics are written under: `fid_intra` is written as its mean and
    its worst group. A skipped metric is listed under these same keys, whatever the reason it was skipped."""
    return [key for m in metrics for key in (("fid_intra_mean", "fid_intra_worst") if m == "fid_intra" else (m,))]


def _skip_fid_family(metrics: list[str], report: QualityReport, why: str) -> None:
    for key in fid_metric_keys(metrics):
        if key not in report.metrics:
            report.skipped[key] = why


def _fid_family(task, images, predicted, device, data_root, ref_stats, report: QualityReport, ref: FeatureRef) -> None:
    from fairbench.features import load_feature_network
    from fairbench.metrics import frechet
    from fairbench.scoring import refstats

    quality = task.quality
    source = data.SOURCES.get(task.dataset.source)
    fingerprint = None
    if getattr(source, "user_supplied", False):  # a reference the user may not have given: skip, with the reason
        try:
            reference = data.load_split(task, "reference", data_root)
            fingerprint = source.fingerprint(quality.reference, paths.data_root(data_root))
        except FairbenchError as exc:
            _skip_fid_family(quality.metrics, report, str(exc))
            return
    try:
        if ref.trained_on_first_use:
            from fairbench.features import load_first_use_network

            net = load_first_use_network(task, ref.id, data_root)
        else:
            net = load_feature_network(ref.id, ref.sha256)
    except FairbenchError as exc:
        _skip_fid_family(quality.metrics, report, str(exc))
        return
    report.feature_network = {"id": net.id, "sha256": net.sha256, "dim": net.dim, "resize_rule": net.resize_rule}
    if fingerprint is not None:  # a user's reference folder: values against different folders never mix
        report.feature_network["reference_sha256"] = fingerprint
    else:
        try:
            reference = data.load_split(task, "reference", data_root)
        except FairbenchError as exc:
            # Fairness needs only the judge: a missing reference split (offline, no dataset) skips the FID
            # family, except `fid` against statistics the user gave, and says why.
            _without_reference(task, images, device, ref_stats, net, report, f"no reference split: {exc}")
            return
    generated = net.extract(images, SCORE_CHUNK, device)  # fixed: see fairbench.chunking
    groups = task.groups.names
    key_base = {
        "data_hash": task.data_hash,
        "split": "reference",
        "split_spec": [quality.reference.part, quality.reference.start, quality.reference.stop],
        "feature_network": [net.id, net.sha256],
        "resize_rule": net.resize_rule,
        **({"compute": net.compute} if hasattr(net, "compute") else {}),  # float64-era caches are not reused
        "seed": quality.seed,
        **({"reference_sha256": fingerprint} if fingerprint is not None else {}),
    }
    identity = data.data_source(task, data_root)
    if identity is not None:  # the same spec on other pixels (a JPEG copy) must not share cached statistics
        key_base["data_source"] = identity
    ref_features: dict[str, np.ndarray] = {}

    def features_of(variant: str, index: np.ndarray) -> np.ndarray:
        if variant not in ref_features:
            ref_features[variant] = refstats.get_or_compute_features(
                {**key_base, "variant": variant},
                lambda: net.extract(reference.images[torch.from_numpy(index)], SCORE_CHUNK, device),
            )
        return ref_features[variant]

    def stats_of(variant: str, index: np.ndarray):
        return refstats.get_or_compute({**key_base, "variant": variant}, lambda: frechet.feature_stats(features_of(variant, index)))

    ref_groups = reference.groups.numpy()
    all_index = np.arange(len(reference))
    n_boot, seed = quality.n_resamples, quality.seed

    # fid and fid_balanced bootstrap the same generated rows with the same seed: one bootstrap serves both.
    whole_set_refs = {}
    if "fid" in quality.metrics:
        whole_set_refs["fid"] = _user_ref_stats(ref_stats, net) if ref_stats is not None else stats_of("as-is", all_index)
    if "fid_balanced" in quality.metrics:
        balanced = _balanced_index(ref_groups, len(groups), quality.seed)
        if balanced is None:
            report.skipped["fid_balanced"] = "the reference split lacks a group, so it cannot be balanced"
        else:
            whole_set_refs["fid_balanced"] = stats_of("balanced", balanced)
    if whole_set_refs:
        fids = frechet.fid_with_intervals(generated, list(whole_set_refs.values()), n_boot, seed)
        for name, (value, ci) in zip(whole_set_refs, fids):
            report.metrics[name] = _metric(value, ci)
    if "fid_intra" in quality.metrics:
        per_group: dict[str, dict[str, Any] | None] = {}
        missing = []
        for g, name in enumerate(groups):
            mine = generated[predicted == g]
            ref_index = np.flatnonzero(ref_groups == g)
            if len(mine) < 2 or len(ref_index) < 2:
                per_group[name] = None
                missing.append(f"group {name} has {len(mine)} generated and {len(ref_index)} reference samples")
                continue
            value, ci = frechet.fid_with_interval(mine, stats_of(f"group:{name}", ref_index), n_boot, seed)
            per_group[name] = _metric(value, ci)
        report.per_group["fid_intra"] = per_group
        if missing:
            why = "; ".join(missing) + " (FID needs at least 2 in each)"
            report.skipped["fid_intra_mean"] = report.skipped["fid_intra_worst"] = why
        else:
            values = np.array([per_group[n]["value"] for n in groups])  # type: ignore[index]
            los = np.array([per_group[n]["ci95"][0] for n in groups])  # type: ignore[index]
            his = np.array([per_group[n]["ci95"][1] for n in groups])  # type: ignore[index]
            # Intervals of a mean/max of independent per-group estimates, bounded by the per-group bounds.
            report.metrics["fid_intra_mean"] = _metric(values.mean(), (los.mean(), his.mean()))
            worst = int(values.argmax())
            report.metrics["fid_intra_worst"] = _metric(values[worst], (los.max(), his.max()))
    if "kid" in quality.metrics:
        try:
            value, ci = frechet.kid(generated, features_of("as-is", all_index), None, quality.kid_subsets, seed)
            report.metrics["kid"] = _metric(value, ci)
        except FairbenchError as exc:
            report.skipped["kid"] = str(exc)


def _without_reference(task, images, device, ref_stats, net, report: QualityReport, why: str) -> None:
    from fairbench.metrics import frechet

    quality = task.quality
    if ref_stats is not None and "fid" in quality.metrics:
        generated = net.extract(images, SCORE_CHUNK, device)  # fixed: see fairbench.chunking
        ((value, ci),) = frechet.fid_with_intervals(generated, [_user_ref_stats(ref_stats, net)], quality.n_resamples, quality.seed)
        report.metrics["fid"] = _metric(value, ci)
    _skip_fid_family(quality.metrics, report, why)


def _user_ref_stats(path: Path, net):
    """--ref-stats: refused when its recorded feature network is not the task's (values would not compare)."""
    from fairbench.metrics import frechet

    stats, meta = frechet.load_stats(path)
    recorded = meta.get("key", {}).get("feature_network") if isinstance(meta.get("key"), dict) else None
    if recorded is not None and list(recorded) != [net.id, net.sha256]:
        raise FairbenchError(f"{path}: statistics were computed with feature network {recorded[0]}, not {net.id}")
    if stats.dim != net.dim:
        raise FairbenchError(f"{path}: statistics have {stats.dim} dims, feature network {net.id} gives {net.dim}")
    return stats


def _balanced_index(groups: np.ndarray, n_groups: int, seed: int) -> np.ndarray | None:
    """Equal counts per group: every group subsampled (seeded) to the smallest group's size."""
    pools = [np.flatnonzero(groups == g) for g in range(n_groups)]
    smallest = min(len(p) for p in pools)
    if smallest == 0:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.choice(p, smallest, replace=False) for p in pools]))


def _iqa(name, images, predicted, task, device, report: QualityReport) -> None:
    """One IQA metric, overall and per group, with the sha256 of every weight file it used (`iqa_weights`)."""
    from fairbench import assets
    from fairbench.metrics import iqa

    ok, why = iqa.available(name)
    if not ok:
        report.skipped[name] = why
        return
    metric = iqa.IQA_METRICS.get(name)
    scores = np.asarray(metric.compute(images, SCORE_CHUNK, device), dtype=np.float64)
    # Hashed after the compute, which has verified (or trust-on-first-use pinned) exactly these files.
    weights: dict[str, str] = {}
    for asset_id in metric.assets:
        digest = assets.status(asset_id).actual_sha256
        if digest is None:  # removed while scoring: a value with unknown weights must not reach the leaderboard
            report.skipped[name] = f"weight file {asset_id!r} of {name} disappeared while scoring"
            return
        weights[asset_id] = digest
    unscorable = ~np.isfinite(scores)  # e.g. NIQE and BRISQUE on flat images
    if unscorable.all():
        report.skipped[name] = f"{name} could score none of the {len(scores)} images"
        return
    if unscorable.any():
        report.skipped[f"{name}_unscorable_images"] = f"{int(unscorable.sum())} of {len(scores)} images left out"
    rng = np.random.default_rng(task.bootstrap.seed)
    n_boot = task.bootstrap.n_resamples

    def summary(mask: np.ndarray) -> dict[str, Any] | None:
        values = scores[mask & ~unscorable]
        if len(values) == 0:
            return None
        return _metric(values.mean(), _mean_interval(values, rng, n_boot), metric.higher_is_better)

    report.metrics[name] = summary(np.ones(len(scores), dtype=bool))  # type: ignore[assignment]
    report.per_group[name] = {g: summary(predicted == i) for i, g in enumerate(task.groups.names)}
    report.iqa_weights[name] = weights


def _mean_interval(scores: np.ndarray, rng: np.random.Generator, n_resamples: int) -> tuple[float, float]:
    """Percentile bootstrap of a mean, via multinomial counts (memory O(resamples), not O(resamples x N))."""
    counts = rng.multinomial(len(scores), np.full(len(scores), 1.0 / len(scores)), size=n_resamples)
    means = counts @ scores / len(scores)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))
