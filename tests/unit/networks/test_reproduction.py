"""Reproduction measured as agreement with the pinned networks (never a retrained hash), and scores from the
pinned files that do not depend on the thread count or the device."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from fairbench import data, features, judges
from fairbench.networks import domain, judge, training
from fairbench.cli import app
from fairbench.networks.archs import DomainNet, JudgeNet
from fairbench.networks.cards import JudgeCard
from fairbench.networks.domain import train_domain_network
from fairbench.networks.judge import train_judge
from fairbench.networks.reproduction import (
    FEATURE_TOLERANCE,
    JUDGE_TOLERANCE,
    QUALITY_RTOL,
    feature_reproduction,
    judge_reproduction,
    procrustes_distance,
)
from fairbench.scoring import ScoreOptions, score_image_set
from fairbench.task_registry import get_task

DIGITS = "digits-bicolor"


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def _untrained(net: torch.nn.Module, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    return path


# ------------------------------------------------------------------------------------------- the measure


def test_procrustes_distance_is_rotation_and_scale_free_and_separates() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert procrustes_distance(x, 7.0 * x @ rotation + 3.0) < 1e-6
    noisy = x + 0.05 * x.std() * rng.normal(size=x.shape)
    unrelated = rng.normal(size=(300, 16))
    assert 0 < procrustes_distance(noisy, x) < 0.1 < 0.5 < procrustes_distance(unrelated, x) <= np.sqrt(2)
    assert procrustes_distance(x, unrelated) == pytest.approx(procrustes_distance(unrelated, x))
    with pytest.raises(ValueError):
        procrustes_distance(x, x[:10])


def test_tolerances_are_stated_and_ordered() -> None:
    assert 0.9 <= FEATURE_TOLERANCE.min_agreement < JUDGE_TOLERANCE.min_agreement < 1
    assert 0 < JUDGE_TOLERANCE.max_accuracy_gap <= FEATURE_TOLERANCE.max_accuracy_gap <= 0.05
    assert FEATURE_TOLERANCE.max_feature_distance is not None and 0 < FEATURE_TOLERANCE.max_feature_distance < 0.5
    assert JUDGE_TOLERANCE.max_feature_distance is None
    assert 0 < QUALITY_RTOL <= 1e-4


# --------------------------------------------------------------------------- retrained vs pinned networks


def test_judge_retrained_on_two_threads_is_within_tolerance(tmp_path: Path) -> None:
    """Two threads instead of one: the float order changes as on another CPU; the judge still agrees."""
    task = get_task(DIGITS)
    card = train_judge(task, tmp_path, threads=2)
    assert (card.torch_version, card.threads) == (torch.__version__, 2) and card.cpu
    assert torch.get_num_threads() == 1, "training restores the caller's thread count"
    report = judge_reproduction(task, tmp_path / f"{card.id}.safetensors")
    assert report.passed, report.lines()
    assert report.agreement >= JUDGE_TOLERANCE.min_agreement
    assert report.accuracy_gap <= JUDGE_TOLERANCE.max_accuracy_gap
    assert report.pinned_accuracy == pytest.approx(judges.load_judge(task).card.accuracy)
    assert report.sha256 == card.sha256 and report.pinned_sha256 == task.judge.sha256


def test_feature_network_retrained_on_two_threads_is_within_tolerance(tmp_path: Path) -> None:
    task = get_task(DIGITS)
    pinned = task.quality.feature_network
    card = train_domain_network(task, tmp_path, threads=2)
    assert (card.torch_version, card.threads, card.training["threads"]) == (torch.__version__, 2, 2)
    report = feature_reproduction(task, pinned.id, pinned.sha256, tmp_path / f"{pinned.id}.safetensors")
    assert report.passed, report.lines()
    assert report.agreement >= FEATURE_TOLERANCE.min_agreement
    assert report.accuracy_gap <= FEATURE_TOLERANCE.max_accuracy_gap
    assert report.feature_distance is not None
    assert report.feature_distance <= FEATURE_TOLERANCE.max_feature_distance
    assert report.accuracy == pytest.approx(card.accuracy)


def test_untrained_networks_fail_the_tolerance(tmp_path: Path) -> None:
    task = get_task(DIGITS)
    torch.manual_seed(123)
    judge = judge_reproduction(task, _untrained(JudgeNet(1, task.n_groups), tmp_path / "j.safetensors"))
    assert not judge.passed and any("agreement" in f for f in judge.failures())
    assert judge.lines()[-1].startswith("reproduction FAILED")
    pinned = task.quality.feature_network
    net = _untrained(DomainNet(1, task.num_classes), tmp_path / "f.safetensors")
    report = feature_reproduction(task, pinned.id, pinned.sha256, net)
    assert report.agreement < 0.5 and report.accuracy_gap > 0.5
    assert report.feature_distance > FEATURE_TOLERANCE.max_feature_distance
    assert len(report.failures()) == 3 and not report.passed


def test_an_undertrained_feature_network_fails(tmp_path: Path) -> None:
    """One epoch of the 30-epoch recipe, another seed: a real training run that must not pass."""
    task = get_task(DIGITS)
    pinned = task.quality.feature_network
    train_domain_network(task, tmp_path, seed=7, epochs=1)
    report = feature_reproduction(task, pinned.id, pinned.sha256, tmp_path / f"{pinned.id}.safetensors")
    assert not report.passed and report.agreement < FEATURE_TOLERANCE.min_agreement


def test_bit_exact_match_is_a_bonus_line() -> None:
    task = get_task(DIGITS)
    pinned = task.quality.feature_network
    report = feature_reproduction(task, pinned.id, pinned.sha256, domain.PACKAGE_DIR / f"{pinned.id}.safetensors")
    assert report.bit_exact and report.passed
    assert (report.agreement, report.accuracy_gap) == (1.0, 0.0) and report.feature_distance < 1e-6
    assert any(line.strip().startswith("bonus, bit-exact: yes") for line in report.lines())
    different = dataclasses.replace(report, sha256="0" * 64)
    assert different.passed and not different.bit_exact
    assert any("bonus, bit-exact: no" in line for line in different.lines())


def test_shipped_cards_without_machine_fields_still_load() -> None:
    task = get_task(DIGITS)
    card = judges.load_judge(task).card
    assert card.torch_version is None and card.threads is None and card.cpu is None
    assert card.machine_lines()[0].startswith("trained on: not recorded")
    pinned = task.quality.feature_network
    assert features.load_domain_network(pinned.id, pinned.sha256).card.torch_version is None
    raw = json.loads((judge.PACKAGE_DIR / "digits-bicolor.json").read_text())
    fresh = JudgeCard(**{**raw, "torch_version": "2.0", "threads": 4, "cpu": "Some CPU"})
    assert fresh.machine_lines() == ["trained with torch 2.0, 4 threads", "trained on CPU: Some CPU"]
    assert training.cpu_name()


# ----------------------------------------------------------------------------------------------- the CLI


def test_judge_train_cli_reports_agreement_and_passes(tmp_path: Path) -> None:
    result = invoke("judge", "train", "--task", DIGITS, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert lines[-1] == "reproduction PASSED: within tolerance of the pinned network"
    assert any(line.strip().startswith("prediction agreement") and line.endswith(": ok") for line in lines)
    assert any(line.strip().startswith("bonus, bit-exact:") for line in lines)
    assert any(line.startswith(f"trained with torch {torch.__version__}") for line in lines)
    card = json.loads((tmp_path / "digits-bicolor.json").read_text())
    assert card["torch_version"] == torch.__version__ and card["threads"] >= 1 and card["cpu"]


def test_judge_train_cli_exits_1_when_reproduction_fails(tmp_path: Path, monkeypatch) -> None:
    """A recipe that no longer trains (here: weights left at initialisation) fails, whatever the hash says."""
    task = get_task(DIGITS)

    def broken(spec, out_dir, data_root=None, seed=0, progress=None, threads=None):
        _untrained(JudgeNet(1, spec.n_groups), Path(out_dir) / f"{spec.judge.id}.safetensors")
        shipped = judges.load_judge(spec).card
        return dataclasses.replace(shipped, sha256="0" * 64, accuracy=0.5, torch_version=torch.__version__,
                                   threads=1, cpu="test")

    monkeypatch.setattr(judge, "train_judge", broken)
    result = invoke("judge", "train", "--task", task.id, "--out", str(tmp_path))
    assert result.exit_code == 1, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("reproduction FAILED")
    assert any("prediction agreement" in line and line.endswith("FAIL") for line in lines)


def test_features_train_cli_exits_1_when_reproduction_fails(tmp_path: Path, monkeypatch) -> None:
    """A broken recipe (one epoch instead of 30) trains a network that fails the tolerance: exit status 1."""
    recipe = domain.DOMAIN_RECIPES["domain-digits"]
    monkeypatch.setitem(domain.DOMAIN_RECIPES, "domain-digits", dataclasses.replace(recipe, epochs=1))
    result = invoke("features", "train", "--task", DIGITS, "--out", str(tmp_path))
    assert result.exit_code == 1, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[-1].startswith("reproduction FAILED") and all(len(line) <= 80 for line in lines)
    assert any("bit-exact: no" in line for line in lines)


# ------------------------------------------------------------------------- scores from the pinned files


@pytest.fixture(scope="module")
def image_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 real digits, a third of them half-blended with noise (harder for judge and features alike)."""
    split = data.load_split(get_task(DIGITS), "train")
    images = split.images[:600].clone()
    noise = torch.randint(0, 256, images[:200].shape, generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    images[:200] = ((images[:200].int() + noise.int()) // 2).to(torch.uint8)
    path = tmp_path_factory.mktemp("set") / "blend.npz"
    np.savez(path, images=images.numpy().transpose(0, 2, 3, 1), labels=split.labels[:600].numpy())
    return path


def _score(path: Path, device: str = "cpu", threads: int = 1):
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return score_image_set(DIGITS, path, ScoreOptions(device=device))
    finally:
        torch.set_num_threads(previous)


def _numbers(tree: Any, prefix: str = "") -> dict[str, float]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _numbers(sub, f"{prefix}/{key}").items()}
    if isinstance(tree, list):
        return {k: v for i, sub in enumerate(tree) for k, v in _numbers(sub, f"{prefix}[{i}]").items()}
    if isinstance(tree, (int, float)) and not isinstance(tree, bool):
        return {prefix: float(tree)}
    return {}


def _assert_same_scores(a, b) -> None:
    assert a.group_counts == b.group_counts
    assert a.per_condition["counts"] == b.per_condition["counts"]
    assert a.metrics.keys() == b.metrics.keys() and {"fid", "kid", "fid_balanced"} <= a.metrics.keys()
    for part in ("metrics", "per_group"):
        left, right = _numbers(getattr(a, part)), _numbers(getattr(b, part))
        assert left.keys() == right.keys() and left
        for key in left:
            np.testing.assert_allclose(right[key], left[key], rtol=QUALITY_RTOL, atol=1e-12, err_msg=f"{part}{key}")


def test_scores_are_the_same_with_one_and_two_threads(image_set: Path) -> None:
    one, two = _score(image_set, threads=1), _score(image_set, threads=2)
    assert sum(one.group_counts) == 600 and min(one.group_counts) > 0
    _assert_same_scores(one, two)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_scores_on_cuda_match_the_cpu(image_set: Path) -> None:
    cpu, cuda = _score(image_set, "cpu"), _score(image_set, "cuda")
    assert cuda.device.startswith("cuda")
    _assert_same_scores(cpu, cuda)
