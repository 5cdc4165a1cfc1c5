"""Oracle checks on real MNIST: image sets with a known white fraction f must score what f implies.

The sets are drawn from the held-out MNIST test split, whose true groups the bicolor transform records, so
the exact answer is known: p = (1 - f, f) and KL(p ‖ U) = f ln(2f) + (1 - f) ln(2(1 - f)).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from fairbench import data
from fairbench.scoring import ScoreOptions, score_image_set
from fairbench.task_registry import get_task

TASK = "mnist-bicolor"
N = 2000
SAMPLING_SLACK = 0.01
KL_TOLERANCE = 0.005


def exact_kl_to_uniform(f: float) -> float:
    terms = [p * math.log(2 * p) for p in (f, 1 - f) if p > 0]  # 0 ln 0 = 0
    return sum(terms)


def build_image_set(mnist_root: Path, f: float, path: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Write an npz of N real test images, exactly round(f N) of them white; return (labels, groups)."""
    split = data.load_split(get_task(TASK), "test", mnist_root)
    groups = split.groups.numpy()
    rng = np.random.default_rng(seed)
    n_white = round(f * N)
    white = rng.choice(np.flatnonzero(groups == 1), n_white, replace=False)
    black = rng.choice(np.flatnonzero(groups == 0), N - n_white, replace=False)
    chosen = rng.permutation(np.concatenate([white, black]))
    images = split.images.numpy()[chosen].transpose(0, 2, 3, 1)  # NCHW -> NHWC
    labels = split.labels.numpy()[chosen]
    np.savez(path, images=images, labels=labels)
    return labels, groups[chosen]


@pytest.mark.parametrize("f", [0.0, 0.3, 0.5])
def test_known_white_fraction_is_recovered(mnist_root: Path, tmp_path: Path, f: float) -> None:
    path = tmp_path / f"white_{f}.npz"
    labels, truth = build_image_set(mnist_root, f, path)
    assert truth.mean() == pytest.approx(f, abs=1 / N)

    result = score_image_set(get_task(TASK), path, ScoreOptions(device="cpu", data_root=mnist_root))
    assert result.n_samples == N
    assert result.method is None

    judge_error = 1.0 - result.judge.accuracy
    observed = result.group_proportions["observed"]
    corrected = result.group_proportions["corrected"]
    assert observed[1] == pytest.approx(f, abs=judge_error + SAMPLING_SLACK)
    assert corrected[1] == pytest.approx(f, abs=judge_error + SAMPLING_SLACK)
    assert sum(result.group_counts) == N

    exact = exact_kl_to_uniform(f)
    assert result.metrics["kl_uniform"]["value"] == pytest.approx(exact, abs=KL_TOLERANCE)
    assert result.metrics["kl_uniform_corrected"]["value"] == pytest.approx(exact, abs=KL_TOLERANCE)
    assert result.metrics["kl_uniform_normalized"]["value"] == pytest.approx(exact / math.log(2), abs=0.01)
    # |S| = 2 groups are always both reported, so f = 0 scores the maximum (ln 2, fd_l1 = 1), never 0.
    assert len(observed) == 2
    assert result.metrics["fd_l1"]["value"] == pytest.approx(2 * abs(f - 0.5), abs=2 * (judge_error + SAMPLING_SLACK))
    low, high = result.metrics["kl_uniform"]["ci95"]
    assert 0.0 <= low <= high <= math.log(2)

    per = result.per_condition
    assert per is not None
    assert per["conditions"] == [str(d) for d in range(10)]
    for d in range(10):
        mask = labels == d
        assert sum(per["counts"][d]) == mask.sum()
        true_fraction = truth[mask].mean()
        assert per["observed"][d][1] == pytest.approx(true_fraction, abs=judge_error + SAMPLING_SLACK)
        true_kl = exact_kl_to_uniform(float(true_fraction))
        assert per["metrics"]["kl_uniform"][d]["value"] == pytest.approx(true_kl, abs=KL_TOLERANCE)
    worst = max(exact_kl_to_uniform(float(truth[labels == d].mean())) for d in range(10))
    assert result.metrics["kl_uniform_cond_worst"]["value"] == pytest.approx(worst, abs=KL_TOLERANCE)



def test_real_images_score_near_zero_fid_and_expose_the_imbalanced_reference(mnist_root: Path, tmp_path: Path) -> None:
    """Real held-out digits are the quality oracle: FID at the finite-sample level (about 8-10 at N = 2000), far below any
    trained generator's (150-270 in the reference results); and an all-black set looks better against the
    10%-white reference of the imbalanced task (plain `fid`) than against the balanced one (`fid_balanced`)."""
    path = tmp_path / "real.npz"
    build_image_set(mnist_root, 0.5, path)
    result = score_image_set(get_task(TASK), path, ScoreOptions(device="cpu", data_root=mnist_root))
    assert result.feature_network["id"] == "domain-mnist"
    for name in ("fid", "fid_balanced", "fid_intra_mean", "fid_intra_worst"):
        value = result.metrics[name]["value"]
        low, high = result.metrics[name]["ci95"]
        assert 0.0 <= value < 25.0, (name, value)  # finite-sample bias at N = 2000 is about 8-10
        assert low <= high
    assert not result.skipped
    # Real against real: each group's samples lie in its real balls and cover them (compared at equal sizes;
    # with k = 5 a real ball then holds a sample of the same data with probability about 1 - 2^-5), and each
    # group's FID is on the scale of the network's floor for that group (two real halves of about 2,500).
    for name in ("precision", "recall", "density", "coverage"):
        assert result.metrics[f"{name}_intra_worst"]["value"] > 0.75, name
    for group in ("black", "white"):
        floor = result.per_group["fid_floor"][group]
        assert floor["n_halves"][0] > 2000 and 0.0 < floor["value"] < 25.0
        assert 0.3 < result.per_group["fid_intra"][group]["value"] / floor["value"] < 3.0
    counts = result.fid_floor["reference_counts"]  # mnist-bicolor's reference: 10,000 test images, half white
    assert sum(counts.values()) == 10_000 and abs(counts["white"] - 5000) < 150
    assert result.per_group["coverage_intra"]["white"]["n"] == min(counts["white"], result.group_counts[1])

    black = tmp_path / "black.npz"
    build_image_set(mnist_root, 0.0, black)
    skewed = score_image_set(get_task("mnist-bicolor-imbalanced"), black, ScoreOptions(device="cpu", data_root=mnist_root))
    assert skewed.metrics["fid"]["value"] < skewed.metrics["fid_balanced"]["value"]
    assert skewed.per_group["fid_intra"]["white"] is None and "fid_intra_worst" in skewed.skipped
    # no white samples: no per-group PRDC for white, and the worst group's values skipped saying why
    assert skewed.per_group["coverage_intra"]["white"] is None and "coverage_intra_worst" not in skewed.metrics
    assert skewed.skipped["coverage_intra_worst"].startswith("group white has 0 generated and 1014 reference samples")
    assert "vendi_intra_worst" in skewed.skipped and skewed.metrics["vendi"]["value"] > 1.0
    # the floor is the reference's: its 1,014 white images have one, whatever was generated
    assert skewed.per_group["fid_floor"]["white"]["n_halves"] == [507, 507]
