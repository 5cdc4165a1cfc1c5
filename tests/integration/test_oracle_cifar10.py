"""Real-image oracle for the shipped CIFAR-10 judge: real test images mixed in known, non-uniform class
proportions, judged. The judge is ~70% accurate, so raw judged shares are pulled towards uniform; the
judge-error correction must undo that: corrected shares closer to the truth, the truth inside their intervals.

The honest check calibrates on one half of the balanced test split and mixes images from the other half, so
the confusion matrix used for the correction was not measured on the very images it corrects. The second
check goes through `fairbench score` with the shipped card (calibrated on the whole test split)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from fairbench import data
from fairbench.judges import confusion_counts, load_judge
from fairbench.metrics.fairness import fairness_report
from fairbench.scoring import ScoreOptions, score_image_set
from fairbench.task_registry import get_task

TASK = "cifar10-lt"
# A long-tailed truth (rho 10 over half a class's test images): 500, 387, 299, ... 50 images.
MIX = [int(500 * 0.1 ** (c / 9)) for c in range(10)]


@pytest.fixture(scope="module")
def cifar_root() -> Path:
    root = Path(os.environ.get("FAIRBENCH_DATA", "../shared/data")).expanduser()
    if not (root / "cifar10" / "test").is_dir():
        pytest.skip("real CIFAR-10 not found (set FAIRBENCH_DATA)")
    return root


def _halves(groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = [], []
    for g in range(10):
        pool = rng.permutation(np.flatnonzero(groups == g))
        a.append(pool[: len(pool) // 2])
        b.append(pool[len(pool) // 2 :])
    return np.concatenate(a), np.concatenate(b)


def _mixture(groups: np.ndarray, pool: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.choice(pool[groups[pool] == g], MIX[g], replace=False) for g in range(10)])


def test_correction_recovers_known_proportions_on_held_out_half(cifar_root: Path) -> None:
    task = get_task(TASK)
    test = data.load_split(task, "test", cifar_root)
    groups = test.groups.numpy()
    predicted = load_judge(task).predict(test.images)
    truth = np.asarray(MIX, dtype=np.float64) / sum(MIX)
    for seed in (0, 1):
        calib, rest = _halves(groups, seed)
        counts = confusion_counts(groups[calib], predicted[calib], 10)
        rates = counts / counts.sum(1, keepdims=True)
        chosen = _mixture(groups, rest, seed)
        report = fairness_report(predicted[chosen], 10, rates, calibration_counts=counts)
        raw, corrected = np.asarray(report.observed), np.asarray(report.corrected)
        raw_l1, corrected_l1 = np.abs(raw - truth).sum(), np.abs(corrected - truth).sum()
        print(f"seed {seed}: L1 to truth raw {raw_l1:.4f} corrected {corrected_l1:.4f}")
        print("  truth    ", np.round(truth, 4).tolist())
        print("  raw      ", np.round(raw, 4).tolist())
        print("  corrected", np.round(corrected, 4).tolist())
        assert corrected_l1 < 0.5 * raw_l1
        box = report.shares["corrected"]
        assert np.all(np.asarray(box.lower) <= truth) and np.all(truth <= np.asarray(box.upper))


def test_score_image_set_with_the_shipped_card(cifar_root: Path, tmp_path: Path) -> None:
    # The fairness half only: the FID family on 10,000 reference images is the slow part and is covered by the
    # domain network's own checks below.
    task = dataclasses.replace(get_task(TASK), quality=None)
    test = data.load_split(task, "test", cifar_root)
    groups = test.groups.numpy()
    chosen = _mixture(groups, np.arange(len(groups)), seed=3)
    path = tmp_path / "mix.npz"
    np.savez(path, images=test.images.numpy()[chosen].transpose(0, 2, 3, 1))
    result = score_image_set(task, path, ScoreOptions(data_root=cifar_root, device="cpu"))
    truth = np.asarray(MIX, dtype=np.float64) / sum(MIX)
    raw = np.asarray(result.group_proportions["observed"])
    corrected = np.asarray(result.group_proportions["corrected"])
    assert np.abs(corrected - truth).sum() < 0.5 * np.abs(raw - truth).sum()
    assert result.data_source["format"] == "imagefolder-jpeg"
    assert result.judge.sha256 == task.judge.sha256


def test_reproduction_check_builds_the_pinned_judge_architecture(cifar_root: Path) -> None:
    """`fairbench judge train` compares a retrained file with the pinned one; given the pinned file itself it
    must agree fully (the 3-block judge is rebuilt from its card's arch, not as the 2-block one)."""
    from fairbench.networks.judge import PACKAGE_DIR as JUDGES_DIR
    from fairbench.networks.reproduction import judge_reproduction

    task = get_task(TASK)
    judge = judge_reproduction(task, JUDGES_DIR / "cifar10.safetensors", cifar_root)
    assert judge.passed and judge.agreement > 0.999 and abs(judge.accuracy - 0.776) < 0.002  # up to other CPUs' kernels


def test_shipped_domain_network_classifies_as_its_card_says(cifar_root: Path) -> None:
    from fairbench.features import load_feature_network

    task = get_task(TASK)
    ref = task.quality.feature_network
    net = load_feature_network(ref.id, ref.sha256)
    test = data.load_split(task, "test", cifar_root)
    every = np.arange(0, len(test), 5)  # 2,000 images, 200 per class
    accuracy = float((net.classify(test.images[every]) == test.labels.numpy()[every]).mean())
    assert abs(accuracy - net.card.accuracy) < 0.04  # 4 standard errors of a 2,000-image estimate
    assert net.extract(test.images[every[:50]], 25, "cpu").shape == (50, 128)


def test_judge_verdicts_do_not_depend_on_batch_size(cifar_root: Path) -> None:
    task = get_task(TASK)
    images = data.load_split(task, "test", cifar_root).images[::20]
    judge = load_judge(task)
    in_sevens = np.concatenate([judge.predict(images[i : i + 7]) for i in range(0, len(images), 7)])
    assert np.array_equal(judge.predict(images), in_sevens)
