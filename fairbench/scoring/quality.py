"""The quality half of the score card: the FID family on the task's feature network, and no-reference IQA.

Every metric that can be computed is; one that cannot (a missing optional asset or package, a group with
too few samples) is listed in `skipped` with the reason, and never fails the score as a whole.

On the same features, per judged group against that group's real reference images (the pairing of
`fid_intra`): precision, recall, density and coverage (`prdc`, k = 5) and the Vendi score (`vendi`, also
over the whole set; it needs no reference). PRDC compares equal numbers, as Naeem et al. do: the larger side
of a group is subsampled (seeded) to the smaller's size, since recall and coverage move with the ratio of
the two (1,000 real held-out digits against a 5,000-image reference cover 66% of it; equal sizes, about 97%),
and the worst group would otherwise be the rarest one, whatever its quality. The board gets each one's worst group (`coverage_intra_worst`,
...; all higher is better, so the worst is the lowest); the result keeps every group under `per_group`.
They carry no interval (`ci95` null): a bootstrap resample's duplicated rows are each other's nearest
neighbours and identical directions, which bias k-NN and similarity statistics, so its percentiles would
not describe their spread. Vendi counts effective distinct samples, so a group the generator draws rarely
has a low one: read `vendi_intra_worst` as the variety the least-served group gets, not as a rate.

Beside the FID family, the network's floor (`network_floor`): the FD between two disjoint halves of the real
reference, per group and whole, what this network says about two samples of the same real data at those
sizes. It is computed once per reference and network and cached (`refstats.get_or_compute_floor`). Halves
are smaller than a FID's samples, and the FD of one distribution falls as 1/n, so each floor is also given
at the run's own sizes (`at_fid_sizes`, `floor_at`): on digits-bicolor's 165 black reference images the
halves give 38, while a perfect generator's 1,000 black samples would score about 11.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fairbench import data, paths
from fairbench.chunking import SCORE_CHUNK
from fairbench.errors import FairbenchError
from fairbench.results.names import (
    FID,
    FID_BALANCED,
    FID_FLOOR,
    FID_INTRA,
    FID_INTRA_MEAN,
    FID_INTRA_WORST,
    INTRA,
    INTRA_WORST,
    KID,
    PRDC,
    PRDC_NAMES,
    VENDI,
    VENDI_INTRA,
    VENDI_INTRA_WORST,
)
from fairbench.task_registry import FeatureRef, TaskSpec


@dataclass
class QualityReport:
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {value, ci95, higher_is_better}
    per_group: dict[str, dict[str, dict[str, Any] | None]] = field(default_factory=dict)  # metric -> group -> ...
    feature_network: dict[str, Any] | None = None
    # IQA metric -> {asset id: sha256 of the local file it scored with}: user-supplied weights have no published
    # hash, so two users' values are only comparable when these match.
    iqa_weights: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    # The network's floor on the whole reference: {"value", "n_halves", "reference_counts"}; per group it is
    # per_group["fid_floor"]. None when no reference split was scored against.
    fid_floor: dict[str, Any] | None = None


PRDC_K = 5  # the neighbourhood size Naeem et al. recommend and report with
FLOOR_METRICS = (FID, FID_BALANCED, FID_INTRA)  # any of them scores against the reference: its floor is shown


def _metric(value: float, ci95: tuple[float, float], higher_is_better: bool = False) -> dict[str, Any]:
    return {"value": float(value), "ci95": [float(ci95[0]), float(ci95[1])], "higher_is_better": higher_is_better}


def _point(value: float, higher_is_better: bool) -> dict[str, Any]:
    """A value without an interval (PRDC, Vendi: see the module docstring)."""
    return {"value": float(value), "ci95": None, "higher_is_better": higher_is_better}


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
    from fairbench.features.dinov2 import DINOV2_ASSETS

    return {"inception": INCEPTION_ASSET, CLIP_ID: CLIP_ASSET, **DINOV2_ASSETS}


def select_feature_network(task: TaskSpec, requested: str | None, device: torch.device | str) -> FeatureRef:
    """The network that scores the FID family: `requested` (`--feature-network`; "task" means none), else the
    task's `gpu_feature_network` on a CUDA device, else its `feature_network`. A requested id is pinned by the
    task when it names it, else by the asset manifest (`inception`, `clip`, `dinov2*`); results record the choice."""
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

        from fairbench.features.dinov2 import first_use_sha256

        asset = get_asset(by_asset[requested])  # trust-on-first-use (dinov2): pinned by the first copy used
        sha256 = asset.sha256 if asset.verify == "sha256" else first_use_sha256(asset.id)
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
    """The result keys the task's feature-network metrics are written under: `fid_intra` as its mean and its
    worst group, `prdc` as each of its four metrics' worst group, `vendi` whole and worst group, and the
    network's floor (`fid_floor`) with any metric scored against the reference. A skipped metric is listed
    under these same keys, whatever the reason it was skipped."""
    written = {
        FID_INTRA: (FID_INTRA_MEAN, FID_INTRA_WORST),
        PRDC: tuple(name + INTRA_WORST for name in PRDC_NAMES),
        VENDI: (VENDI, VENDI_INTRA_WORST),
    }
    keys = [key for m in metrics for key in written.get(m, (m,))]
    return keys + ([FID_FLOOR] if set(metrics) & set(FLOOR_METRICS) else [])


def _skip_fid_family(metrics: list[str], report: QualityReport, why: str) -> None:
    for key in fid_metric_keys(metrics):
        if key not in report.metrics and key not in report.skipped:  # a reason given already is the real one
            report.skipped[key] = why


def _fid_family(task, images, predicted, device, data_root, ref_stats, report: QualityReport, ref: FeatureRef) -> None:
    from fairbench.features import load_feature_network
    from fairbench.metrics import frechet
    import fairbench.scoring.refstats as refstats

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
            _without_reference(task, images, predicted, device, ref_stats, net, report, f"no reference split: {exc}")
            return
    generated = net.extract(images, SCORE_CHUNK, device)  # fixed: see fairbench.chunking
    groups = task.groups.names
    key_base = _reference_key(task, net, data_root, fingerprint)
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
    if FID in quality.metrics:
        whole_set_refs[FID] = _user_ref_stats(ref_stats, net) if ref_stats is not None else stats_of("as-is", all_index)
    if FID_BALANCED in quality.metrics:
        balanced = _balanced_index(ref_groups, len(groups), quality.seed)
        if balanced is None:
            report.skipped[FID_BALANCED] = "the reference split lacks a group, so it cannot be balanced"
        else:
            whole_set_refs[FID_BALANCED] = stats_of("balanced", balanced)
    if whole_set_refs:
        fids = frechet.fid_with_intervals(generated, list(whole_set_refs.values()), n_boot, seed)
        for name, (value, ci) in zip(whole_set_refs, fids):
            report.metrics[name] = _metric(value, ci)
    if FID_INTRA in quality.metrics:
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
        report.per_group[FID_INTRA] = per_group
        if missing:
            why = "; ".join(missing) + " (FID needs at least 2 in each)"
            report.skipped[FID_INTRA_MEAN] = report.skipped[FID_INTRA_WORST] = why
        else:
            values = np.array([per_group[n]["value"] for n in groups])  # type: ignore[index]
            los = np.array([per_group[n]["ci95"][0] for n in groups])  # type: ignore[index]
            his = np.array([per_group[n]["ci95"][1] for n in groups])  # type: ignore[index]
            # Intervals of a mean/max of independent per-group estimates, bounded by the per-group bounds.
            report.metrics[FID_INTRA_MEAN] = _metric(values.mean(), (los.mean(), his.mean()))
            worst = int(values.argmax())
            report.metrics[FID_INTRA_WORST] = _metric(values[worst], (los.max(), his.max()))
    if KID in quality.metrics:
        try:
            value, ci = frechet.kid(generated, features_of("as-is", all_index), None, quality.kid_subsets, seed)
            report.metrics[KID] = _metric(value, ci)
        except FairbenchError as exc:
            report.skipped[KID] = str(exc)
    if PRDC in quality.metrics:
        from fairbench.metrics.prdc import knn_square_radii

        reference_features = features_of("as-is", all_index)

        def radii_of(name: str, rows: np.ndarray) -> np.ndarray:
            key = {**key_base, "variant": f"{refstats.GROUP_PREFIX}{name}", "rows_of": "as-is"}
            return refstats.get_or_compute_radii(key, PRDC_K, lambda: knn_square_radii(rows, PRDC_K))

        prdc_per_group(generated, predicted, groups, reference_features, ref_groups, report, seed, radii_of,
                       order_keys=image_keys(images))
    if VENDI in quality.metrics:
        vendi_whole_and_per_group(generated, predicted, groups, report)
    if set(quality.metrics) & set(FLOOR_METRICS):
        generated_counts = np.bincount(predicted, minlength=len(groups)).tolist()
        _floor_into(report, task, key_base, lambda: features_of("as-is", all_index), ref_groups, generated_counts)


def _reference_key(task: TaskSpec, net: Any, data_root: Path | None, fingerprint: str | None) -> dict[str, Any]:
    """What every cached thing of the reference split is keyed by (`refstats`), less its variant."""
    quality = task.quality
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
    return key_base


def _floor_into(report: QualityReport, task: TaskSpec, key_base: dict[str, Any], reference_features: Any,
                ref_groups: np.ndarray, generated_counts: list[int] | None) -> None:
    import fairbench.scoring.refstats as refstats

    groups = list(task.groups.names) if task.transform is not None else None  # else the groups are unknown (-1)
    floor = refstats.get_or_compute_floor(
        {**key_base, "variant": "floor"},
        lambda: network_floor(reference_features(), ref_groups, groups, task.quality.seed),
    )
    _record_floor(floor, ref_groups, groups, report, generated_counts)


def reference_floor(task: TaskSpec, recorded: dict[str, Any], data_root: Path | None = None,
                    device: torch.device | str = "cpu") -> QualityReport:
    """The network's floor exactly as scoring records it (same split, same cache), for results scored before
    it was recorded: `fid_floor`, `per_group["fid_floor"]` and `skipped` of the returned report.

    `recorded`: a result (its `feature_network`, `data_source` and `group_counts`); a floor is only given for
    that very network and data (a FairbenchError says why not)."""
    from fairbench.features import load_feature_network, load_first_use_network
    import fairbench.scoring.refstats as refstats

    network = recorded.get("feature_network") or {}
    if task.quality is None or not network.get("id"):
        raise FairbenchError(f"task {task.id}: the results record no feature network")
    ref = select_feature_network(task, str(network["id"]), device)
    net = load_first_use_network(task, ref.id, data_root) if ref.trained_on_first_use else load_feature_network(ref.id, ref.sha256)
    if net.sha256 != network.get("sha256"):
        raise FairbenchError(f"the results were scored with {network['id']} {str(network.get('sha256'))[:12]}, "
                             f"this fairbench has {net.sha256[:12]}")
    reference = data.load_split(task, "reference", data_root)
    source = data.SOURCES.get(task.dataset.source)
    fingerprint = source.fingerprint(task.quality.reference, paths.data_root(data_root)) if getattr(source, "user_supplied", False) else None
    if fingerprint != network.get("reference_sha256"):
        raise FairbenchError("the results were scored against another reference folder")
    if data.data_source(task, data_root) != recorded.get("data_source"):
        raise FairbenchError("the results were scored on other data than the copy found here")
    key_base = _reference_key(task, net, data_root, fingerprint)
    index = np.arange(len(reference))
    features = lambda: refstats.get_or_compute_features(  # noqa: E731  (the scoring's own cache entry)
        {**key_base, "variant": "as-is"}, lambda: net.extract(reference.images[torch.from_numpy(index)], SCORE_CHUNK, device)
    )
    report = QualityReport()
    counts = recorded.get("group_counts")
    _floor_into(report, task, key_base, features, reference.groups.numpy(), counts if isinstance(counts, list) else None)
    return report


def prdc_per_group(
    generated: np.ndarray, predicted: np.ndarray, groups: list[str], reference: np.ndarray, ref_groups: np.ndarray,
    report: QualityReport, seed: int, radii_of: Any = None, order_keys: np.ndarray | None = None,
) -> None:
    """Precision, recall, density and coverage of each judged group's samples against the real images of that
    group (`per_group["<name>_intra"]`, with `n`, the size each side was compared at), and each one's worst
    group (`<name>_intra_worst`). The larger side is subsampled to the smaller's size, seeded by `seed` and the
    group. A group with at most k samples on either side has none: it is None and the worst is skipped,
    saying which and why. `radii_of(group, rows)`: the whole reference group's squared k-NN radii, cached.
    `order_keys`: one key per generated row (`image_keys`); the generated subsample is drawn from the rows in
    key order, so the same images in another order give the same subsample."""
    from fairbench.metrics.prdc import prdc

    per_group: dict[str, dict[str, dict[str, Any] | None]] = {name: {} for name in PRDC_NAMES}
    missing = []
    for g, group in enumerate(groups):
        mine_index, rows = np.flatnonzero(predicted == g), reference[ref_groups == g]
        if order_keys is not None:
            mine_index = mine_index[np.argsort(order_keys[mine_index], kind="stable")]
        mine = generated[mine_index]
        n = min(len(mine), len(rows))
        if n <= PRDC_K:
            for name in PRDC_NAMES:
                per_group[name][group] = None
            missing.append(f"group {group} has {len(mine)} generated and {len(rows)} reference samples")
            continue
        rng = np.random.default_rng([seed, g])  # a group's subsample does not depend on the other groups
        radii = None
        if len(rows) > n:
            rows = rows[np.sort(rng.choice(len(rows), n, replace=False))]
        elif radii_of is not None:
            radii = radii_of(group, rows)
        if len(mine) > n:
            mine = mine[np.sort(rng.choice(len(mine), n, replace=False))]
        values = prdc(rows, mine, PRDC_K, label=f"group {group}", real_square_radii=radii)
        for name in PRDC_NAMES:
            per_group[name][group] = {**_point(getattr(values, name), higher_is_better=True), "n": n}
    for name in PRDC_NAMES:
        report.per_group[name + INTRA] = per_group[name]
        if missing:
            report.skipped[name + INTRA_WORST] = "; ".join(missing) + f" (PRDC with k = {PRDC_K} needs at least {PRDC_K + 1} in each)"
        else:
            worst = min(entry["value"] for entry in per_group[name].values())  # type: ignore[index]
            report.metrics[name + INTRA_WORST] = _point(worst, higher_is_better=True)


def image_keys(images: torch.Tensor) -> np.ndarray:
    """8 bytes of BLAKE2b of each image's pixels: an order of the images that does not depend on the order
    they were submitted in."""
    pixels = images.detach().cpu().numpy()
    return np.array([int.from_bytes(hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=8).digest(), "little")
                     for x in pixels], dtype=np.uint64)


def vendi_whole_and_per_group(generated: np.ndarray, predicted: np.ndarray, groups: list[str], report: QualityReport) -> None:
    """The Vendi score of all samples (`vendi`) and of each judged group's (`per_group["vendi_intra"]`), and
    the lowest group's (`vendi_intra_worst`, skipped with the reason when a group has none)."""
    from fairbench.metrics.vendi import vendi_score

    try:
        report.metrics[VENDI] = _point(vendi_score(generated), higher_is_better=True)
    except FairbenchError as exc:
        report.skipped[VENDI] = str(exc)
    per_group: dict[str, dict[str, Any] | None] = {}
    missing = []
    for g, group in enumerate(groups):
        mine = generated[predicted == g]
        try:
            per_group[group] = {**_point(vendi_score(mine, label=f"group {group}"), higher_is_better=True), "n": len(mine)}
        except FairbenchError as exc:
            per_group[group] = None
            missing.append(str(exc))
    report.per_group[VENDI_INTRA] = per_group
    if missing:
        report.skipped[VENDI_INTRA_WORST] = "; ".join(missing)
    else:
        report.metrics[VENDI_INTRA_WORST] = _point(min(e["value"] for e in per_group.values()), higher_is_better=True)  # type: ignore[index]


def floor_halves(ref_groups: np.ndarray, n_groups: int | None, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Two disjoint halves (sorted row indices) of each group's reference rows, or of all rows when
    `n_groups` is None: a seeded permutation of each pool, its first len // 2 rows and the rest."""
    rng = np.random.default_rng(seed)
    pools = [np.arange(len(ref_groups))] if n_groups is None else [np.flatnonzero(ref_groups == g) for g in range(n_groups)]
    out = []
    for pool in pools:
        order = rng.permutation(pool)
        out.append((np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])))
    return out


def network_floor(features: np.ndarray, ref_groups: np.ndarray, groups: list[str] | None, seed: int) -> dict[str, Any]:
    """The feature network's floor: the FD between two disjoint halves of the real reference, per group
    (each group's images split in two, seeded) and whole (the union of the groups' halves, so both halves
    keep the reference's group mix). `groups` None: the reference's groups are unknown, one seeded split.

    Two samples of one distribution have FD > 0 at finite size, more where the network spreads a group's
    features wider: a per-group FID near its group's floor is as close as this network can tell at these
    sizes, and unequal floors say the network itself measures the groups unequally. Each half has about
    half the group's images, so the floor is of that size; a FID of more generated samples sits lower."""
    from fairbench.metrics import frechet

    halves = floor_halves(ref_groups, None if groups is None else len(groups), seed)
    per_group = None if groups is None else {
        name: _half_distance(features, first, second, frechet) for name, (first, second) in zip(groups, halves)
    }
    whole = _half_distance(features, np.concatenate([h[0] for h in halves]), np.concatenate([h[1] for h in halves]), frechet)
    return {"whole": whole, "groups": per_group}


def _half_distance(features: np.ndarray, first: np.ndarray, second: np.ndarray, frechet: Any) -> dict[str, Any] | None:
    if min(len(first), len(second)) < 2:
        return None
    a, b = frechet.feature_stats(features[first]), frechet.feature_stats(features[second])
    return {"value": frechet.frechet_distance(a, b), "n_halves": [len(first), len(second)]}


def floor_at(entry: dict[str, Any], n_generated: int, n_reference: int) -> float | None:
    """The floor at a FID's own sample sizes: for two samples of one distribution the FD is, to first order,
    c (1/n1 + 1/n2) (Chong & Forsyth 2020: FID is linear in 1/N; on domain-mnist's features of one group
    FD·(1/n1 + 1/n2)⁻¹ stays within 10% from 300 to 2,500 a side), so the halves' value is rescaled from
    their sizes to the FID's. None below 2 generated samples (no FID there either)."""
    if n_generated < 2 or n_reference < 2:
        return None
    h1, h2 = entry["n_halves"]
    return float(entry["value"]) * (1 / n_generated + 1 / n_reference) / (1 / h1 + 1 / h2)


def _record_floor(floor: dict[str, Any], ref_groups: np.ndarray, groups: list[str] | None, report: QualityReport,
                  generated_counts: list[int] | None = None) -> None:
    """The floor into the report: whole (`fid_floor`, with the reference's group counts, from which a reader
    gets the real data's own imbalance) and per group beside `fid_intra` (`per_group["fid_floor"]`). Each as
    measured (`value`, two halves) and, given the run's judged counts, at its FID's sample sizes
    (`at_fid_sizes`: {"value", "n": [generated, reference]}), the value that FID compares with."""
    counts = None if groups is None else {name: int((ref_groups == g).sum()) for g, name in enumerate(groups)}

    def at_sizes(entry: dict[str, Any], n_generated: int | None, n_reference: int) -> dict[str, Any]:
        if n_generated is None:
            return {}
        value = floor_at(entry, n_generated, n_reference)
        return {} if value is None else {"at_fid_sizes": {"value": value, "n": [n_generated, n_reference]}}

    whole = floor["whole"]
    total = None if generated_counts is None else int(sum(generated_counts))
    if whole is not None:
        report.fid_floor = {"value": whole["value"], "n_halves": whole["n_halves"], **at_sizes(whole, total, len(ref_groups)),
                            "reference_counts": counts}
    if groups is not None:
        report.per_group[FID_FLOOR] = {
            name: None if entry is None else {
                "value": entry["value"], "ci95": None, "higher_is_better": False, "n_halves": entry["n_halves"],
                **at_sizes(entry, None if generated_counts is None else int(generated_counts[g]), counts[name]),  # type: ignore[index]
            }
            for g, (name, entry) in enumerate((name, floor["groups"][name]) for name in groups)  # the task's order,
        }  # not the cache file's (JSON with sorted keys): a result is the same bytes from a cold or a warm cache
    short = [name for name in groups or [] if floor["groups"][name] is None]
    if whole is None or short:
        who = [f"group {name} has {counts[name]} reference images" for name in short] if counts else []  # type: ignore[index]
        if whole is None:
            who.append(f"the reference has {len(ref_groups)} images")
        report.skipped[FID_FLOOR] = "; ".join(who) + " (the floor needs at least 2 in each half)"


def _without_reference(task, images, predicted, device, ref_stats, net, report: QualityReport, why: str) -> None:
    """No reference split: `fid` against statistics the user gave, and the Vendi score, which needs none;
    every other feature-network metric skipped with `why`."""
    from fairbench.metrics import frechet

    quality = task.quality
    wanted = (ref_stats is not None and FID in quality.metrics) or VENDI in quality.metrics
    generated = net.extract(images, SCORE_CHUNK, device) if wanted else None  # fixed: see fairbench.chunking
    if ref_stats is not None and FID in quality.metrics:
        ((value, ci),) = frechet.fid_with_intervals(generated, [_user_ref_stats(ref_stats, net)], quality.n_resamples, quality.seed)
        report.metrics[FID] = _metric(value, ci)
    if VENDI in quality.metrics:
        vendi_whole_and_per_group(generated, predicted, list(task.groups.names), report)
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
