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
from fairbench.board import read_result
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

    def with_fake_iqa(task, images, predicted, device, data_root=None, ref_stats=None, **options):
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


# --------------------------------------------------------------------------------------------- local copies

from typer.testing import CliRunner  # noqa: E402

from fairbench.assets.store import IMPORTS, AssetState  # noqa: E402
from fairbench.cli.assets import assets_app  # noqa: E402
from fairbench.errors import FairbenchError  # noqa: E402
from fairbench.metrics import iqa_weights  # noqa: E402

PUBLISHED = b"the published parameters"


def _libsvm_text(rho: float = -153.591, gamma: float = 0.05, total: int | None = None, crlf: bool = False) -> bytes:
    """A small epsilon-SVR model in libsvm's text format (feature 2 of the second vector left out, as libsvm
    does for zeros)."""
    rows = ["-1024 1:-0.5 2:0.25 36:0.125", "293.0204221462269 1:0.75 3:-1e-05", "512 36:1"]
    head = ["svm_type epsilon_svr", "kernel_type rbf", f"gamma {gamma:g}", "nr_class 2",
            f"total_sv {total or len(rows)}", f"rho {rho:g}", "probA 5.71401", "SV"]
    return ("\r\n" if crlf else "\n").join(head + rows + [""]).encode()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def weights_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """Three stand-in assets: one with a published sha256, one trust-on-first-use with a prefix and a listed
    byte-identical copy, and one BRISQUE-format asset whose listed copy is a libsvm model to convert."""
    model = _libsvm_text(crlf=True)
    pinned_copy = b"a copy with the trusted prefix"
    entries = [
        {"id": "fake-published", "path": "w/published.bin", "url": "https://example.invalid/published.bin",
         "sha256": _sha(PUBLISHED), "licence": "test", "description": "d", "used_by": ["fake-one"]},
        {"id": "fake-tofu", "path": "w/tofu.mat", "url": "https://example.invalid/tofu.mat", "sha256": None,
         "verify": "trust-on-first-use", "sha256_prefix": _sha(pinned_copy)[:16], "licence": "test",
         "description": "d", "used_by": ["fake-tofu"], "source": "no full hash published",
         "local_copies": [{"name": "release", "sha256": _sha(pinned_copy), "format": "copy",
                           "description": "the release's file", "source": "test"}]},
        {"id": "fake-svm", "path": "w/svm.pth", "url": "https://example.invalid/svm.pth", "sha256": "e" * 64,
         "licence": "test", "description": "d", "used_by": ["fake-svm"],
         "local_copies": [{"name": "live-text", "sha256": _sha(model), "format": "libsvm-brisque",
                           "description": "libsvm text", "source": "test"}]},
    ]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump({"version": 1, "assets": entries}))
    monkeypatch.setenv(store.MANIFEST_ENV, str(manifest))
    return {"model": model, "pinned_copy": pinned_copy}


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / "mine" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(data)
    return path


def test_the_published_file_is_imported_as_the_asset_itself(weights_manifest, tmp_path) -> None:
    result = iqa_weights.import_weights("fake-published", _file(tmp_path, "p.bin", PUBLISHED))
    assert result.kind == "published" and result.path.read_bytes() == PUBLISHED
    st = store.status("fake-published")
    assert st.state is AssetState.VERIFIED and st.imported is None and st.label == "present"


def test_a_trust_on_first_use_asset_takes_a_listed_copy_and_pins_it(weights_manifest, tmp_path) -> None:
    copy = _file(tmp_path, "modelparameters.mat", weights_manifest["pinned_copy"])
    result = iqa_weights.import_weights("fake-tofu", copy)
    assert result.kind == "published" and result.sha256 == _sha(weights_manifest["pinned_copy"])
    pins = json.loads((store.assets_root() / store.PINS).read_text())
    assert pins["fake-tofu"] == {"sha256": result.sha256, "origin": f"imported from {copy}"}
    assert store.status("fake-tofu").state is AssetState.VERIFIED
    with pytest.raises(FairbenchError, match="neither the published file's"):
        iqa_weights.import_weights("fake-tofu", _file(tmp_path, "other.mat", b"other bytes"))


def test_a_listed_libsvm_model_is_converted_and_recorded_under_its_own_sha256(weights_manifest, tmp_path) -> None:
    source = _file(tmp_path, "allmodel", weights_manifest["model"])
    result = iqa_weights.import_weights("fake-svm", source)
    assert result.kind == "converted" and result.local_copy.name == "live-text"
    assert result.source_sha256 == _sha(weights_manifest["model"])
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest() != "e" * 64
    coef, sv = torch.load(result.path, weights_only=True)
    assert coef.dtype == sv.dtype == torch.float32 and tuple(sv.shape) == (3, 36)
    assert coef.tolist() == pytest.approx([-1024.0, 293.0204221462269, 512.0], rel=1e-7)
    expected = np.zeros((3, 36), dtype=np.float32)
    expected[0, [0, 1, 35]] = [-0.5, 0.25, 0.125]
    expected[1, [0, 2]] = [0.75, -1e-05]
    expected[2, 35] = 1.0
    assert np.array_equal(sv.numpy(), expected)
    st = store.status("fake-svm")
    assert st.state is AssetState.VERIFIED and st.label == "present (converted from live-text)"
    assert st.actual_sha256 == st.expected_sha256 == result.sha256
    record = json.loads((store.assets_root() / IMPORTS).read_text())["fake-svm"]
    assert record["source_sha256"] == result.source_sha256 and record["kind"] == "converted"


def test_results_carry_the_sha256_of_a_converted_file(weights_manifest, tmp_path, monkeypatch) -> None:
    """The point of recording: a result computed with converted weights names them, not the published file."""
    result = iqa_weights.import_weights("fake-svm", _file(tmp_path, "allmodel", weights_manifest["model"]))
    metric = FakeIQA("fake-svm", ["fake-svm"])
    monkeypatch.setitem(iqa.IQA_METRICS._items, "fake-svm", metric)
    monkeypatch.setattr(iqa, "available", lambda name, **_: (True, ""))
    images, predicted = _inputs()
    report = quality.QualityReport()
    quality._iqa("fake-svm", images, predicted, _task([]), torch.device("cpu"), report)
    assert report.iqa_weights == {"fake-svm": {"fake-svm": result.sha256}}


def test_an_unknown_file_is_refused_unless_it_is_a_named_substitute(weights_manifest, tmp_path) -> None:
    mine = _file(tmp_path, "retrained.bin", b"retrained parameters")
    with pytest.raises(FairbenchError, match="pass --substitute"):
        iqa_weights.import_weights("fake-published", mine)
    assert not store.asset_path("fake-published").exists()
    result = iqa_weights.import_weights("fake-published", mine, substitute=True)
    st = store.status("fake-published")
    assert result.kind == "substitute" and st.state is AssetState.VERIFIED
    assert st.label == "present (substitute, not the published file)"
    assert st.actual_sha256 == _sha(b"retrained parameters")
    store.asset_path("fake-published").write_bytes(b"changed afterwards")  # never silently accepted
    assert store.status("fake-published", use_cache=False).state is AssetState.CORRUPT
    iqa_weights.import_weights("fake-published", _file(tmp_path, "p.bin", PUBLISHED))  # back to the published
    st = store.status("fake-published", use_cache=False)
    assert st.state is AssetState.VERIFIED and st.imported is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (_libsvm_text(rho=-155.845), "gamma 0.05 and rho -155.845"),  # the brisque package's own SVR
        (_libsvm_text(gamma=0.1), "gamma 0.1 and rho -153.591"),
        (_libsvm_text().replace(b"epsilon_svr", b"nu_svr"), "svm_type 'nu_svr'"),
        (_libsvm_text(total=4), "total_sv says 4, the file has 3"),
        (_libsvm_text().replace(b"36:1", b"37:1"), "feature index 37"),
        (b"not a model", "no 'SV' line"),
    ],
)
def test_the_converter_refuses_what_pyiqa_would_misread(tmp_path, text, why) -> None:
    with pytest.raises(FairbenchError, match=why):
        iqa_weights.brisque_from_libsvm(_file(tmp_path, "m.txt", text), tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()


def test_niqe_parameter_files_are_checked_before_use(tmp_path) -> None:
    import scipy.io

    rng = np.random.default_rng(0)
    a = rng.normal(size=(36, 36))
    good, skvideo_like = tmp_path / "good.mat", tmp_path / "pop.mat"
    scipy.io.savemat(good, {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": a @ a.T})
    scipy.io.savemat(skvideo_like, {"pop_mu": rng.normal(size=(1, 36)), "pop_cov": a @ a.T})
    iqa_weights.check_niqe_mat(good)
    with pytest.raises(FairbenchError, match="pop_cov, pop_mu, not NIQE's mu_prisparam"):
        iqa_weights.check_niqe_mat(skvideo_like)
    scipy.io.savemat(skvideo_like, {"mu_prisparam": np.zeros((1, 18)), "cov_prisparam": np.eye(18)})
    with pytest.raises(FairbenchError, match="NIQE needs 36"):
        iqa_weights.check_niqe_mat(skvideo_like)


def test_cli_import_says_what_it_did(weights_manifest, tmp_path) -> None:
    runner = CliRunner()
    out = runner.invoke(assets_app, ["import", "fake-svm", str(_file(tmp_path, "allmodel", weights_manifest["model"]))])
    assert out.exit_code == 0 and "converted live-text" in out.output and "file of its own" in out.output
    refused = runner.invoke(assets_app, ["import", "fake-published", str(_file(tmp_path, "x.bin", b"x"))])
    assert refused.exit_code != 0 and "--substitute" in refused.output
    sub = runner.invoke(assets_app, ["import", "fake-published", str(tmp_path / "mine" / "x.bin"), "--substitute"])
    assert sub.exit_code == 0 and "NOT the published parameters" in sub.output
    kept = runner.invoke(assets_app, ["fetch", "fake-published"])
    assert kept.exit_code == 0 and "kept fake-published: present (substitute" in kept.output
    listed = {row["id"]: row for row in json.loads(runner.invoke(assets_app, ["list", "--json"]).output)}
    assert listed["fake-published"]["imported"]["kind"] == "substitute"
    assert listed["fake-svm"]["imported"]["local_copy"] == "live-text" and listed["fake-tofu"]["imported"] is None


def test_the_shipped_manifest_lists_the_live_releases_as_local_copies(monkeypatch) -> None:
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    manifest = store.load_manifest()
    niqe, brisque = manifest["niqe-modelparameters"], manifest["brisque-svm-weights"]
    # LIVE's NIQE release file is the pinned file itself (full sha256; its first 16 digits were published)
    assert niqe.sha256 is not None and niqe.sha256.startswith("fa2aa4d12dd9595c") and not niqe.local_copies
    assert {c.format for c in brisque.local_copies} == {"libsvm-brisque"}
    assert set(iqa_weights.CONVERTERS) >= {c.format for c in brisque.local_copies}
