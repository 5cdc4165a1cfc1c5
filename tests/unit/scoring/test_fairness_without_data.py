"""Fairness needs only the judge: an image set of every installed task, scored with no dataset anywhere, gets
every fairness metric, and each FID-family metric is listed as skipped, with its reason, under the key it
would have been written under. A task whose judge itself needs data (trained on first use) or a file the
user supplies says so in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from fairbench import data
from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.scoring import _data_source
from fairbench.scoring.quality import fid_metric_keys
from fairbench.task_registry import get_task
from tests.helpers import REPO_ROOT

TASKS = sorted(p.stem for p in (REPO_ROOT / "tasks").glob("*.yaml"))
FAIRNESS = {"kl_uniform", "kl_uniform_debiased", "kl_uniform_normalized", "fd_l1", "fd_l2"}


def _judge_is_shipped(task) -> bool:
    return task.judge.kind == "pinned" and not task.judge.trained_on_first_use


@pytest.fixture()
def no_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("FAIRBENCH_DATA", str(empty))
    return empty


def _no_reference(task) -> bool:
    try:
        data.load_split(task, "reference")
    except FairbenchError:
        return True
    return False


def _image_set(task, path: Path) -> Path:
    c, h, w = task.image_shape
    rng = np.random.default_rng(0)
    n = 60
    images = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    np.savez(path, images=images, labels=np.arange(n) % max(task.num_classes, 1))
    return path


def test_every_task_is_covered() -> None:
    assert len(TASKS) >= 9 and {"cifar10-lt", "svhn-shaded", "mnist-bicolor", "ffhq-race"} <= set(TASKS)


@pytest.mark.parametrize("task_id", TASKS)
def test_image_set_without_any_dataset(task_id: str, no_data: Path, tmp_path: Path) -> None:
    task = get_task(task_id)
    images = _image_set(task, tmp_path / "set.npz")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["score", "--task", task_id, "--images", str(images), "--device", "cpu",
                                   "--out", str(out)])
    if not _judge_is_shipped(task):
        # The judge is trained on first use from the task's data, or is a file the user places: one line.
        assert res.exit_code == 2, res.output
        (line,) = res.output.strip().splitlines()
        assert line.startswith("error: ") and "Traceback" not in res.output
        if task.judge.trained_on_first_use:
            assert f"its judge {task.judge.id} is trained on first use" in line
            assert str(no_data / "svhn" / "train_32x32.mat") in line  # where the data goes
        else:
            assert "place res34_fair_align_multi_7" in line
        assert not out.exists()
        return
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    counts = np.asarray(result["group_counts"], dtype=float)
    p = counts[counts > 0] / counts.sum()
    assert result["metrics"]["kl_uniform"]["value"] == pytest.approx(float((p * np.log(p * len(counts))).sum()), abs=1e-9)
    assert FAIRNESS <= set(result["metrics"])
    assert ("kl_uniform_corrected" in result["metrics"]) == (result["judge"]["confusion"] is not None)
    if task.conditional:
        assert "fd_l1_cond_worst" in result["metrics"]
    keys = fid_metric_keys(task.quality.metrics)
    if _no_reference(task):  # nothing to compare with: each FID-family key skipped, never the unexpanded fid_intra
        # The Vendi score needs no reference: it is there wherever the task's feature network could be made.
        vendi = [k for k in keys if k.startswith("vendi")]
        keys = [k for k in keys if k not in vendi]
        assert all((k in result["metrics"]) != (k in result["skipped"]) for k in vendi)
        assert not set(keys) & set(result["metrics"])
        assert set(keys) <= set(result["skipped"]) and "fid_intra" not in result["skipped"]
        assert all(str(no_data) in result["skipped"][k] for k in keys)
        assert result["data_source"] is None
        assert " ".join(res.stdout.split()).count("skipped " + ", ".join(keys) + ":") == 1
    else:  # scikit-learn's digits are always there
        assert set(keys) - {"fid_floor"} <= set(result["metrics"])
        assert result["fid_floor"]["value"] > 0 and "fid_floor" not in result["skipped"]
    assert not any(no_data.iterdir()), "nothing is downloaded into the data root"


def test_data_source_is_looked_up_never_downloaded(no_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without FAIRBENCH_OFFLINE, hashing a missing CIFAR-10 for the result must not start a 170 MB download."""
    from fairbench import netcheck

    monkeypatch.delenv("FAIRBENCH_OFFLINE", raising=False)

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download the dataset only to hash it")

    monkeypatch.setattr(netcheck, "probe", no_download)
    for task_id in ("cifar10-lt", "svhn-shaded"):
        assert _data_source(get_task(task_id), None) is None
    assert not any(no_data.iterdir())


def test_one_name_per_skipped_metric_whatever_the_reason(no_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A feature network that cannot be loaded skips the same keys as a missing reference split: the keys the
    metrics are written under (fid_intra_mean and fid_intra_worst, never fid_intra)."""
    import torch

    from fairbench import features
    from fairbench.scoring.quality import quality_report

    def gone(*args, **kwargs):
        raise FairbenchError("feature network file gone")

    monkeypatch.setattr(features, "load_feature_network", gone)
    task = get_task("mnist-bicolor")
    images = torch.zeros((4, 1, 28, 28), dtype=torch.uint8)
    predicted = np.zeros(4, dtype=np.int64)
    report = quality_report(task, images, predicted, torch.device("cpu"))
    expected = {"fid", "fid_balanced", "fid_intra_mean", "fid_intra_worst", "kid", "precision_intra_worst",
                "recall_intra_worst", "density_intra_worst", "coverage_intra_worst", "vendi", "vendi_intra_worst",
                "fid_floor"}
    assert report.skipped == {k: "feature network file gone" for k in expected}
    assert report.metrics == {}
    first_use = quality_report(task, images, predicted, torch.device("cpu"), fid_skipped_because="no SVHN")
    assert first_use.skipped == {k: "no SVHN" for k in expected}
