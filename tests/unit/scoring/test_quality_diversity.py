"""Per-group PRDC and Vendi, and the feature network's floor, as scoring writes them: each checked against an
independent computation (the `prdc` and `vendi-score` packages, Fréchet distance by scipy's `sqrtm`) on known
inputs, edge cases included; the caches, determinism and the task hash they leave alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from fairbench.errors import FairbenchError
from fairbench.metrics import prdc as prdc_module
from fairbench.metrics import vendi as vendi_module
from fairbench.metrics.prdc import knn_square_radii
from fairbench.scoring import refstats
from fairbench.scoring.quality import (
    PRDC_K,
    QualityReport,
    floor_halves,
    network_floor,
    prdc_per_group,
    vendi_whole_and_per_group,
)
from fairbench.task_registry import get_task, load_task_file
from tests.helpers import REPO_ROOT

reference_prdc = pytest.importorskip("prdc")
reference_vendi = pytest.importorskip("vendi_score.vendi")

GROUPS = ["a", "b", "c"]
PRDC = ("precision", "recall", "density", "coverage")


def _sets(sizes_generated: list[int], sizes_reference: list[int], dim: int = 12, seed: int = 0):
    """Generated and reference features per group (group g centred at g, generated slightly off and wider)."""
    rng = np.random.default_rng(seed)
    gen = np.concatenate([rng.normal(g + 0.2, 1.3, size=(n, dim)) for g, n in enumerate(sizes_generated)])
    ref = np.concatenate([rng.normal(g, 1.0, size=(n, dim)) for g, n in enumerate(sizes_reference)])
    predicted = np.repeat(np.arange(len(sizes_generated)), sizes_generated)
    ref_groups = np.repeat(np.arange(len(sizes_reference)), sizes_reference)
    shuffle = rng.permutation(len(gen))  # the judge's order is not the group order
    return gen[shuffle], predicted[shuffle], ref, ref_groups


def _subsample(x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) == n else x[np.sort(rng.choice(len(x), n, replace=False))]


def test_prdc_per_group_agrees_with_the_reference_package_at_equal_sizes() -> None:
    """a: more generated than real (generated subsampled), b: fewer (reference subsampled), c: equal."""
    gen, predicted, ref, ref_groups = _sets([300, 80, 150], [200, 250, 150])
    report = QualityReport()
    prdc_per_group(gen, predicted, GROUPS, ref, ref_groups, report, seed=7)
    for g, group in enumerate(GROUPS):
        mine, rows = gen[predicted == g], ref[ref_groups == g]
        n = min(len(mine), len(rows))
        rng = np.random.default_rng([7, g])  # the documented subsample: reference first, then generated
        rows = _subsample(rows, n, rng)
        mine = _subsample(mine, n, rng)
        theirs = reference_prdc.compute_prdc(rows, mine, PRDC_K)
        for name in PRDC:
            entry = report.per_group[f"{name}_intra"][group]
            assert entry["value"] == pytest.approx(theirs[name], abs=1e-12), (group, name)
            assert entry["n"] == n and entry["ci95"] is None and entry["higher_is_better"] is True
    for name in PRDC:  # every one is higher-is-better: the worst group is the lowest
        values = [report.per_group[f"{name}_intra"][g]["value"] for g in GROUPS]
        assert report.metrics[f"{name}_intra_worst"] == {"value": min(values), "ci95": None, "higher_is_better": True}
    assert not report.skipped


def test_prdc_sees_a_group_drawn_badly() -> None:
    """Group b's samples are pure noise far from its real images: its precision and coverage are the worst."""
    gen, predicted, ref, ref_groups = _sets([200, 200, 200], [200, 200, 200])
    gen[predicted == 1] += 25.0
    report = QualityReport()
    prdc_per_group(gen, predicted, GROUPS, ref, ref_groups, report, seed=0)
    assert report.per_group["coverage_intra"]["b"]["value"] == 0.0
    assert report.metrics["precision_intra_worst"]["value"] == 0.0
    assert report.per_group["precision_intra"]["a"]["value"] > 0.5


def test_cached_radii_change_nothing_and_are_used_only_for_a_whole_group() -> None:
    gen, predicted, ref, ref_groups = _sets([300, 80, 150], [200, 250, 150])
    plain, cached = QualityReport(), QualityReport()
    prdc_per_group(gen, predicted, GROUPS, ref, ref_groups, plain, seed=3)
    asked = []

    def radii_of(group: str, rows: np.ndarray) -> np.ndarray:
        asked.append((group, len(rows)))
        return knn_square_radii(rows, PRDC_K)

    prdc_per_group(gen, predicted, GROUPS, ref, ref_groups, cached, seed=3, radii_of=radii_of)
    assert cached.per_group == plain.per_group and cached.metrics == plain.metrics
    assert asked == [("a", 200), ("c", 150)]  # b's reference is subsampled: its radii are of that subsample


def test_the_generated_subsample_does_not_depend_on_the_order_of_the_images() -> None:
    """Image keys order the rows before the seeded subsample: the same images shuffled, the same values."""
    import torch

    from fairbench.scoring.quality import image_keys

    gen, predicted, ref, ref_groups = _sets([300, 280, 150], [200, 250, 100])
    images = torch.from_numpy(np.random.default_rng(9).integers(0, 256, size=(len(gen), 1, 4, 4), dtype=np.uint8))
    first = QualityReport()
    prdc_per_group(gen, predicted, GROUPS, ref, ref_groups, first, seed=0, order_keys=image_keys(images))
    order = np.random.default_rng(1).permutation(len(gen))
    shuffled = QualityReport()
    prdc_per_group(gen[order], predicted[order], GROUPS, ref, ref_groups, shuffled, seed=0,
                   order_keys=image_keys(images[torch.from_numpy(order)]))
    assert shuffled.per_group == first.per_group
    by_position = QualityReport()  # without keys the subsample follows the positions: another one
    prdc_per_group(gen[order], predicted[order], GROUPS, ref, ref_groups, by_position, seed=0)
    assert by_position.per_group["coverage_intra"] != first.per_group["coverage_intra"]
    assert len(set(image_keys(images).tolist())) == len(gen)


def test_prdc_does_not_depend_on_the_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    gen, predicted, ref, ref_groups = _sets([300, 80, 150], [200, 250, 150])
    whole = QualityReport()
    prdc_per_group(gen, predicted, GROUPS, ref, ref_groups, whole, seed=0)
    monkeypatch.setattr(prdc_module, "BLOCK", 17)
    blocked = QualityReport()
    prdc_per_group(gen, predicted, GROUPS, ref, ref_groups, blocked, seed=0)
    assert blocked.per_group == whole.per_group


@pytest.mark.parametrize(("n_generated", "n_reference"), [(PRDC_K, 100), (100, PRDC_K), (0, 100)])
def test_a_group_with_too_few_samples_is_skipped_with_the_reason(n_generated: int, n_reference: int) -> None:
    gen, predicted, ref, ref_groups = _sets([50, n_generated, 50], [50, n_reference, 50])
    report = QualityReport()
    prdc_per_group(gen, predicted, GROUPS, ref, ref_groups, report, seed=0)
    for name in PRDC:
        assert report.per_group[f"{name}_intra"]["b"] is None
        assert report.per_group[f"{name}_intra"]["a"]["value"] >= 0.0  # the other groups are still there
        assert f"{name}_intra_worst" not in report.metrics
        assert report.skipped[f"{name}_intra_worst"] == (
            f"group b has {n_generated} generated and {n_reference} reference samples "
            f"(PRDC with k = 5 needs at least 6 in each)"
        )


def test_k_plus_one_samples_are_enough() -> None:
    gen, predicted, ref, ref_groups = _sets([50, PRDC_K + 1, 50], [50, 60, 50])
    report = QualityReport()
    prdc_per_group(gen, predicted, GROUPS, ref, ref_groups, report, seed=0)
    assert report.per_group["coverage_intra"]["b"]["n"] == PRDC_K + 1 and not report.skipped


def test_vendi_whole_and_per_group_agree_with_the_reference_package() -> None:
    gen, predicted, _, _ = _sets([120, 40, 3], [1, 1, 1])
    report = QualityReport()
    vendi_whole_and_per_group(gen, predicted, GROUPS, report)
    assert report.metrics["vendi"]["value"] == pytest.approx(float(reference_vendi.score_dual(gen)), rel=1e-9)
    values = []
    for g, group in enumerate(GROUPS):
        mine = gen[predicted == g]
        entry = report.per_group["vendi_intra"][group]
        assert entry["value"] == pytest.approx(float(reference_vendi.score_dual(mine)), rel=1e-9)
        assert entry["n"] == len(mine) and entry["ci95"] is None
        values.append(entry["value"])
    assert report.metrics["vendi_intra_worst"]["value"] == min(values)
    assert min(values) == report.per_group["vendi_intra"]["c"]["value"] <= 3.0  # 3 samples: at most 3 distinct


def test_vendi_of_a_group_never_drawn_or_of_a_blank_image_is_skipped_not_a_crash() -> None:
    gen, predicted, _, _ = _sets([30, 0, 30], [1, 1, 1])
    report = QualityReport()
    vendi_whole_and_per_group(gen, predicted, GROUPS, report)
    assert report.per_group["vendi_intra"]["b"] is None and "vendi_intra_worst" not in report.metrics
    assert report.skipped["vendi_intra_worst"] == "group b has no samples; the Vendi score needs at least 1"
    gen[0] = 0.0  # an image whose features are all zero (e.g. blank after a ReLU): no cosine similarity
    report = QualityReport()
    vendi_whole_and_per_group(gen, predicted, GROUPS, report)
    assert "all-zero feature vector" in report.skipped["vendi"] and "vendi" not in report.metrics


def test_vendi_does_not_depend_on_the_block_size(monkeypatch: pytest.MonkeyPatch) -> None:
    gen, predicted, _, _ = _sets([300, 200, 100], [1, 1, 1])
    whole = QualityReport()
    vendi_whole_and_per_group(gen, predicted, GROUPS, whole)
    monkeypatch.setattr(vendi_module, "BLOCK", 7)
    blocked = QualityReport()
    vendi_whole_and_per_group(gen, predicted, GROUPS, blocked)
    for group in GROUPS:  # sums in another order: equal to rounding
        assert blocked.per_group["vendi_intra"][group]["value"] == pytest.approx(
            whole.per_group["vendi_intra"][group]["value"], rel=1e-12)


# ------------------------------------------------------------------------------------------------- floor


def _scipy_fd(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root, nothing shared with fairbench.metrics.frechet."""
    mu = a.mean(axis=0) - b.mean(axis=0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(sa @ sb).real
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2.0 * np.trace(root))


def test_floor_halves_are_disjoint_stratified_and_seeded() -> None:
    ref_groups = np.repeat([0, 1, 2], [11, 40, 7])[np.random.default_rng(0).permutation(58)]
    halves = floor_halves(ref_groups, 3, seed=5)
    for g, (first, second) in enumerate(halves):
        pool = np.flatnonzero(ref_groups == g)
        assert not set(first) & set(second) and sorted([*first, *second]) == list(pool)
        assert len(first) == len(pool) // 2 and len(second) == len(pool) - len(pool) // 2
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(halves, floor_halves(ref_groups, 3, seed=5)))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(halves, floor_halves(ref_groups, 3, seed=6)))
    (first, second), = floor_halves(ref_groups, None, seed=5)  # groups unknown: one split of every row
    assert sorted([*first, *second]) == list(range(58))


def test_floor_is_the_frechet_distance_of_the_halves() -> None:
    rng = np.random.default_rng(1)
    ref_groups = np.repeat([0, 1], [300, 120])
    features = rng.normal(size=(420, 6)) @ rng.normal(size=(6, 6))
    floor = network_floor(features, ref_groups, ["x", "y"], seed=2)
    halves = floor_halves(ref_groups, 2, seed=2)
    for name, (first, second) in zip(["x", "y"], halves):
        assert floor["groups"][name]["value"] == pytest.approx(_scipy_fd(features[first], features[second]), rel=1e-8)
        assert floor["groups"][name]["n_halves"] == [len(first), len(second)]
    first = np.concatenate([h[0] for h in halves])
    second = np.concatenate([h[1] for h in halves])
    assert floor["whole"]["value"] == pytest.approx(_scipy_fd(features[first], features[second]), rel=1e-8)
    assert floor["whole"]["n_halves"] == [210, 210]


def test_a_network_that_spreads_one_group_wider_has_a_higher_floor_there() -> None:
    """Same data, same sizes; the network's features of group y are 3x as spread: its floor is about 9x."""
    rng = np.random.default_rng(4)
    features = rng.normal(size=(4000, 8))
    ref_groups = np.repeat([0, 1], 2000)
    features[ref_groups == 1] *= 3.0
    floor = network_floor(features, ref_groups, ["x", "y"], seed=0)
    ratio = floor["groups"]["y"]["value"] / floor["groups"]["x"]["value"]
    assert 6.0 < ratio < 13.0


def test_floor_at_other_sample_sizes_follows_one_over_n() -> None:
    """FD of two samples of one distribution is about c (1/n1 + 1/n2): checked on Gaussian features, the
    halves' floor rescaled to other sizes against FDs measured at those sizes."""
    from fairbench.metrics.frechet import feature_stats, frechet_distance
    from fairbench.scoring.quality import floor_at

    rng = np.random.default_rng(5)
    scale = np.linspace(0.5, 2.0, 16)  # unequal spreads, as a network's features have

    def sample(n: int) -> np.ndarray:
        return rng.normal(size=(n, 16)) * scale

    floor = network_floor(sample(4000), np.zeros(4000, dtype=np.int64), None, seed=0)["whole"]
    for n1, n2 in ((8000, 4000), (500, 4000), (1000, 1000)):
        measured = np.mean([frechet_distance(feature_stats(sample(n1)), feature_stats(sample(n2))) for _ in range(4)])
        assert floor_at(floor, n1, n2) == pytest.approx(measured, rel=0.2), (n1, n2)
    assert floor_at(floor, 1, 4000) is None
    assert floor_at({"value": 2.0, "n_halves": [10, 10]}, 20, 20) == pytest.approx(1.0)  # (2/20) / (2/10)


def test_the_floor_is_written_in_the_tasks_group_order_whatever_the_cache_file_says() -> None:
    """The cache stores JSON with sorted keys; a result lists groups as the task does (White before Asian)."""
    from fairbench.scoring.quality import _record_floor

    features = np.random.default_rng(0).normal(size=(40, 3))
    ref_groups = np.repeat([0, 1], 20)
    computed = network_floor(features, ref_groups, ["White", "Asian"], seed=0)
    from_cache = json.loads(json.dumps(computed, sort_keys=True))
    reports = []
    for floor in (computed, from_cache):
        report = QualityReport()
        _record_floor(floor, ref_groups, ["White", "Asian"], report, [30, 10])
        reports.append(report)
    assert list(reports[1].per_group["fid_floor"]) == ["White", "Asian"]
    assert [json.dumps(r.per_group) for r in reports[:1]] == [json.dumps(reports[1].per_group)]
    assert json.dumps(reports[0].fid_floor) == json.dumps(reports[1].fid_floor)


def test_floor_of_a_group_too_small_to_halve_is_none() -> None:
    features = np.random.default_rng(0).normal(size=(33, 3))
    floor = network_floor(features, np.repeat([0, 1], [30, 3]), ["big", "tiny"], seed=0)
    assert floor["groups"]["tiny"] is None and floor["groups"]["big"]["value"] > 0
    assert floor["whole"]["n_halves"] == [16, 17]


# ------------------------------------------------------------------------------------------------ caches


def _key(variant: str = "floor") -> dict:
    return {"data_hash": "d" * 64, "split": "reference", "variant": variant, "feature_network": ["net", "s"],
            "resize_rule": "none", "seed": 0}


def test_floor_and_radii_are_computed_once_and_recomputed_when_damaged(caplog: pytest.LogCaptureFixture) -> None:
    value = {"whole": {"value": 1.5, "n_halves": [2, 2]}, "groups": None}
    calls = []

    def floor() -> dict:
        calls.append(1)
        return value

    assert refstats.get_or_compute_floor(_key(), floor) == value
    assert refstats.get_or_compute_floor(_key(), floor) == value and len(calls) == 1
    path = refstats.cache_path(_key()).with_suffix(".floor.json")
    assert json.loads(path.read_text())["key"] == _key()
    path.write_text("{not json")
    assert refstats.get_or_compute_floor(_key(), floor) == value and len(calls) == 2
    assert "recomputing the feature network's floor" in caplog.text
    stored = json.loads(path.read_text())
    stored["key"]["seed"] = 1  # another key's file renamed into this one's place
    path.write_text(json.dumps(stored))
    assert refstats.get_or_compute_floor(_key(), floor) == value and len(calls) == 3
    with pytest.raises(ValueError, match="variant 'floor'"):
        refstats.get_or_compute_floor(_key("as-is"), floor)

    radii = []

    def compute() -> np.ndarray:
        radii.append(1)
        return np.arange(4.0)

    for _ in range(2):
        np.testing.assert_array_equal(refstats.get_or_compute_radii(_key("group:a"), 5, compute), np.arange(4.0))
    assert len(radii) == 1
    refstats.get_or_compute_radii(_key("group:a"), 3, compute)  # another k: another entry
    assert len(radii) == 2


# ------------------------------------------------------------------------------------------------- tasks


def test_the_new_metrics_leave_every_task_hash_as_it_was(tmp_path: Path) -> None:
    """Results scored before them board beside newer ones: listing prdc and vendi changes no hash."""
    for task_id in ("digits-bicolor", "mnist-bicolor", "utkface-race", "cifar10-lt", "ffhq-race"):
        task = get_task(task_id)
        assert "vendi" in task.quality.metrics
        text = (REPO_ROOT / "tasks" / f"{task_id}.yaml").read_text()
        old = tmp_path / f"{task_id}.yaml"
        old.write_text(text.replace(", prdc, vendi]", "]").replace(", vendi]", "]"))
        assert load_task_file(old).quality.metrics == [m for m in task.quality.metrics if m not in ("prdc", "vendi")]
        assert load_task_file(old).task_hash == task.task_hash


def test_prdc_needs_reference_groups_and_unknown_names_are_refused(tmp_path: Path) -> None:
    text = (REPO_ROOT / "tasks" / "ffhq-race.yaml").read_text()
    assert "transform" not in text.split("quality:")[0].replace("transform:", "")  # ffhq has no groups on its reference
    bad = tmp_path / "ffhq-prdc.yaml"
    bad.write_text(text.replace("metrics: [fid, kid, vendi]", "metrics: [fid, kid, vendi, prdc]"))
    with pytest.raises(FairbenchError, match="prdc need reference images with known groups"):
        load_task_file(bad)
    bad.write_text(text.replace("metrics: [fid, kid, vendi]", "metrics: [fid, vendy]"))
    with pytest.raises(FairbenchError, match="unknown 'vendy'"):
        load_task_file(bad)


# ------------------------------------------------------------------------------------------- end to end


def test_scoring_writes_them_the_same_with_a_cold_and_a_warm_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The shipped digits example: every new key there, equal values from a cold cache, a warm one and a
    cache whose floor file was removed; the floor in the result is what `reference_floor` gives later."""
    from fairbench.examples import example_path
    from fairbench.results import dumps
    from fairbench.scoring import ScoreOptions, score_checkpoint
    from fairbench.scoring.quality import reference_floor

    checkpoint = example_path("digits-vanilla-mbstd64")
    options = ScoreOptions(n_samples=600, device="cpu")
    cold = score_checkpoint(checkpoint, options)
    warm = score_checkpoint(checkpoint, options)
    for path in refstats.cache_path(_key()).parent.glob("*.floor.json"):
        path.unlink()
    again = score_checkpoint(checkpoint, options)
    for other in (warm, again):  # the same bytes, key order included (the floor's cache file sorts its keys)
        for part in ("metrics", "per_group", "fid_floor"):
            assert json.dumps(getattr(other, part)) == json.dumps(getattr(cold, part)), part
    for key in ("vendi", "vendi_intra_worst", *(f"{name}_intra_worst" for name in PRDC)):
        assert key in cold.metrics, key
    assert set(cold.per_group) == {"fid_intra", "fid_floor", "vendi_intra", *(f"{name}_intra" for name in PRDC)}
    counts = dict(zip(cold.groups, cold.group_counts))
    assert {g: e["n"] for g, e in cold.per_group["vendi_intra"].items()} == counts
    assert cold.fid_floor["reference_counts"] == {"black": 165, "white": 182}  # digits' reference: 347 images
    assert cold.fid_floor["n_halves"] == [173, 174]
    # at the FID's sizes (600 generated against 347), the halves' floor rescaled by 1/n
    assert cold.fid_floor["at_fid_sizes"] == {
        "value": pytest.approx(cold.fid_floor["value"] * (1 / 600 + 1 / 347) / (1 / 173 + 1 / 174)), "n": [600, 347]}
    for g, group in enumerate(cold.groups):
        assert cold.per_group["fid_floor"][group]["at_fid_sizes"]["n"] == [cold.group_counts[g], 165 if g == 0 else 182]
    later = reference_floor(get_task("digits-bicolor"), json.loads(dumps(cold)))
    assert later.fid_floor == cold.fid_floor and later.per_group["fid_floor"] == cold.per_group["fid_floor"]
    with pytest.raises(FairbenchError, match="scored with domain-digits"):
        reference_floor(get_task("digits-bicolor"), {"feature_network": {**cold.feature_network, "sha256": "0" * 64}})
