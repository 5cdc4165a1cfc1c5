"""IQA provenance: `_iqa` records the sha256 of the weight files each computed metric used, and scoring
carries it into the result JSON. Stand-in metrics with their own manifest; pyiqa is not needed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml

from fairbench import assets as store
from fairbench import scoring
from fairbench.scoring import quality
from fairbench.leaderboard import read_result
from fairbench.metrics import iqa
from fairbench.results import write_result

BACKBONE, HEAD = b"backbone weights v1", b"quality head v1"


@dataclass
class FakeIQA:
    """Scores each image by its mean brightness (or NaN everywhere); counts how often it was computed."""

    name: str
    assets: list[str]
    higher_is_better: bool = True
    unscorable: bool = False
    calls: list[int] = field(default_factory=list)

    def compute(self, images: torch.Tensor, batch_size: int = 64, device: object = "cpu") -> np.ndarray:
        self.calls.append(len(images))
        if self.unscorable:
            return np.full(len(images), np.nan)
        return images.to(torch.float64).mean(dim=(1, 2, 3)).numpy()


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeIQA]:
    """Two user-supplied weight files (no published hash, like EQ-Face's) placed under the test's home, and
    four stand-in metrics: two computable, one that `available` refuses, one that scores no image."""
    entries = [
        {"id": asset_id, "path": f"faces/{asset_id}.pth", "licence": "test", "description": "Test weights.",
         "used_by": ["fake-faces"], "user_supplied": True}
        for asset_id in ("fake-backbone", "fake-head")
    ]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "assets": entries}))
    monkeypatch.setenv(store.MANIFEST_ENV, str(manifest))
    for asset_id, data in (("fake-backbone", BACKBONE), ("fake-head", HEAD)):
        path = store.asset_path(asset_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    metrics = {
        "fake-faces": FakeIQA("fake-faces", ["fake-backbone", "fake-head"]),
        "fake-one": FakeIQA("fake-one", ["fake-head"], higher_is_better=False),
        "fake-off": FakeIQA("fake-off", ["fake-backbone"]),
        "fake-flat": FakeIQA("fake-flat", ["fake-backbone"], unscorable=True),
    }
    for name, metric in metrics.items():
        monkeypatch.setitem(iqa.IQA_METRICS._items, name, metric)  # removed again when the test ends
    # The real `available` asks whether pyiqa imports; these stand-ins need no pyiqa.
    monkeypatch.setattr(
        iqa, "available", lambda name, **_: (False, "weights withheld") if name == "fake-off" else (True, "")
    )
    return metrics


def _task(iqa_names: list[str]) -> SimpleNamespace:
    return SimpleNamespace(
        quality=SimpleNamespace(metrics=[], iqa=iqa_names),
        bootstrap=SimpleNamespace(seed=0, n_resamples=50),
        groups=SimpleNamespace(names=["a", "b"]),
    )


def _inputs(n: int = 12) -> tuple[torch.Tensor, np.ndarray]:
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(n, 1, 8, 8), dtype=np.uint8))
    return images, np.arange(n) % 2


def test_computed_metric_records_the_sha256_of_each_local_weight_file(fakes) -> None:
    images, predicted = _inputs()
    report = quality.QualityReport()
    quality._iqa("fake-faces", images, predicted, _task([]), torch.device("cpu"), report)
    assert fakes["fake-faces"].calls == [12] and report.metrics["fake-faces"]["higher_is_better"] is True
    assert report.iqa_weights == {
        "fake-faces": {
            "fake-backbone": hashlib.sha256(BACKBONE).hexdigest(),
            "fake-head": hashlib.sha256(HEAD).hexdigest(),
        }
    }


def test_other_weight_bytes_record_another_hash(fakes) -> None:
    """The point of recording: a different user-supplied file shows up as a different hash."""
    store.asset_path("fake-head").write_bytes(b"quality head v2, retrained")
    images, predicted = _inputs()
    report = quality.QualityReport()
    quality._iqa("fake-one", images, predicted, _task([]), torch.device("cpu"), report)
    assert report.iqa_weights == {"fake-one": {"fake-head": hashlib.sha256(b"quality head v2, retrained").hexdigest()}}


def test_skipped_metrics_record_no_weights(fakes) -> None:
    images, predicted = _inputs()
    task = _task(["fake-off", "fake-flat", "fake-one"])
    report = quality.quality_report(task, images, predicted, torch.device("cpu"))
    assert report.skipped["fake-off"] == "weights withheld"
    assert report.skipped["fake-flat"] == "fake-flat could score none of the 12 images"
    assert fakes["fake-off"].calls == [] and fakes["fake-flat"].calls == [12]
    assert set(report.metrics) == {"fake-one"}
    assert report.iqa_weights == {"fake-one": {"fake-head": hashlib.sha256(HEAD).hexdigest()}}


def test_weights_gone_after_compute_skip_the_metric(fakes, monkeypatch) -> None:
    """No value reaches a result without the hash of the weights behind it."""
    metric = fakes["fake-faces"]
    original = metric.compute

    def compute_then_lose_the_file(images, batch_size=64, device="cpu"):
        scores = original(images, batch_size, device)
        store.asset_path("fake-head").unlink()
        return scores

    monkeypatch.setattr(metric, "compute", compute_then_lose_the_file)
    images, predicted = _inputs()
    report = quality.QualityReport()
    quality._iqa("fake-faces", images, predicted, _task([]), torch.device("cpu"), report)
    assert "fake-faces" not in report.metrics and report.iqa_weights == {}
    assert "fake-head" in report.skipped["fake-faces"]


def test_scoring_writes_iqa_weights_into_the_result_json(fakes, tmp_path, monkeypatch) -> None:
    real_report = quality.quality_report

    def with_fake_iqa(task, images, predicted, device, data_root=None, ref_stats=None):
        return real_report(_task(["fake-faces", "fake-off"]), images, predicted, device)

    monkeypatch.setattr(scoring, "quality_report", with_fake_iqa)
    rng = np.random.default_rng(1)
    npz = tmp_path / "set.npz"
    np.savez(npz, images=rng.integers(0, 256, size=(20, 16, 16, 1), dtype=np.uint8),
             labels=rng.integers(0, 10, size=20))
    result = scoring.score_image_set("digits-bicolor", npz, scoring.ScoreOptions(device="cpu"))
    expected = {
        "fake-faces": {
            "fake-backbone": hashlib.sha256(BACKBONE).hexdigest(),
            "fake-head": hashlib.sha256(HEAD).hexdigest(),
        }
    }
    assert result.iqa_weights == expected and "fake-off" in result.skipped
    path = write_result(tmp_path / "result.json", result)
    data = json.loads(path.read_text())
    assert data["iqa_weights"] == expected
    keys = list(data)
    assert keys.index("feature_network") < keys.index("iqa_weights") < keys.index("skipped")
    assert read_result(path).iqa_weights == expected  # the leaderboard reads back what scoring wrote
