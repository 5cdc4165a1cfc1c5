"""A fairness score needs only the judge: an image set scored with the task's reference split absent (offline,
no MNIST anywhere) still gets every fairness metric, and the FID family is listed as skipped with the reason."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fairbench.cli import app
from fairbench.scoring import ScoreOptions, score_image_set
from fairbench.task_registry import get_task

TASK = "mnist-bicolor"
FID_FAMILY = {"fid", "fid_balanced", "fid_intra_mean", "fid_intra_worst", "kid", "precision_intra_worst",
              "recall_intra_worst", "density_intra_worst", "coverage_intra_worst", "fid_floor"}


@pytest.fixture()
def no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("FAIRBENCH_DATA", str(empty))
    monkeypatch.setenv("FAIRBENCH_OFFLINE", "1")
    return empty


@pytest.fixture()
def image_set(tmp_path: Path) -> Path:
    """White strokes on black and black on white in a 3:1 mix, 20 per digit label: the judge tells them apart
    by background alone, so the shares are far from equal."""
    rng = np.random.default_rng(0)
    n = 200
    images = np.zeros((n, 28, 28, 1), dtype=np.uint8)
    images[:, 8:20, 12:16, 0] = 255  # a bar, roughly a "1"
    flip = rng.random(n) < 0.25
    images[flip] = 255 - images[flip]
    path = tmp_path / "mixed.npz"
    np.savez(path, images=images, labels=np.repeat(np.arange(10), n // 10))
    return path


def test_fairness_is_scored_and_fid_family_skipped_with_reason(no_data: Path, image_set: Path) -> None:
    task = get_task(TASK)
    assert task.quality is not None and task.quality.metrics, "the task should define FID-family metrics"
    result = score_image_set(TASK, image_set, ScoreOptions(device="cpu"))
    # fairness: present, and kl_uniform is the KL of the judged shares from uniform, recomputed from the counts
    counts = np.asarray(result.group_counts, dtype=float)
    p = counts / counts.sum()
    kl = sum(x * math.log(x * len(p)) for x in p if x > 0)
    assert result.metrics["kl_uniform"]["value"] == pytest.approx(kl, abs=1e-9)
    assert "kl_uniform_corrected" in result.metrics and "fd_l1_cond_worst" in result.metrics
    assert kl > 0.05, "the mix is unequal, so the score is informative"
    # quality: none of the FID family, each skipped with a reason naming the missing split and the data folder
    assert not FID_FAMILY & set(result.metrics)
    assert set(result.skipped) >= FID_FAMILY
    for name in FID_FAMILY:
        assert result.skipped[name].startswith("no reference split: ")
        assert str(no_data) in result.skipped[name]
    assert result.fid_floor is None and "fid_floor" not in (result.per_group or {})
    # the Vendi score needs the feature network only: whole and per judged group, from the same features
    assert {"vendi", "vendi_intra_worst"} <= set(result.metrics)
    per = result.per_group["vendi_intra"]
    assert result.metrics["vendi_intra_worst"]["value"] == min(v["value"] for v in per.values())


def test_cli_scores_and_says_once_what_was_skipped(no_data: Path, image_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["score", "--task", TASK, "--images", str(image_set), "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    skipped_lines = [line for line in res.stdout.splitlines() if line.startswith("skipped")]
    assert len(skipped_lines) == 1  # one reason, one line (wrapped to the terminal)
    assert " ".join(res.stdout.split()).count(
        "skipped fid, fid_balanced, fid_intra_mean, fid_intra_worst, kid, precision_intra_worst, recall_intra_worst, "
        "density_intra_worst, coverage_intra_worst, fid_floor: no reference split") == 1
    data = json.loads(out.read_text())
    assert set(data["skipped"]) >= FID_FAMILY and "kl_uniform_corrected" in data["metrics"]
