"""No-reference IQA wrappers: the resize protocol, availability reasons, and the plumbing around pyiqa.

pyiqa itself is not installed in the test environment (it is an optional extra); `compute` is exercised with a
stand-in `pyiqa` module that records what fairbench hands it.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from fairbench import assets as store
from fairbench.task_registry import loading as task_loading
from fairbench.errors import FairbenchError
from fairbench.metrics import iqa

# --------------------------------------------------------------------------------------------- registry


def test_registry_names_directions_and_assets(monkeypatch) -> None:
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    assert iqa.IQA_METRICS.names() == ["brisque", "clipiqa", "eqface", "niqe"]
    assert set(task_loading.IQA_METRICS) == set(iqa.IQA_METRICS.names())  # what a task spec may name is what exists
    assert not iqa.IQA_METRICS.get("niqe").higher_is_better
    assert not iqa.IQA_METRICS.get("brisque").higher_is_better
    assert iqa.IQA_METRICS.get("clipiqa").higher_is_better
    manifest = store.load_manifest()
    for name in iqa.IQA_METRICS.names():
        metric = iqa.IQA_METRICS.get(name)
        assert metric.assets and all(name in manifest[a].used_by for a in metric.assets)
        assert store.assets_for([name], manifest) == set(metric.assets)


# --------------------------------------------------------------------------------------------- resize protocol


@pytest.mark.parametrize(
    ("height", "width", "metric", "factor"),
    [
        (28, 28, "niqe", 7), (32, 32, "niqe", 6), (16, 16, "niqe", 12), (8, 8, "niqe", 24), (64, 64, "niqe", 3),
        (28, 40, "niqe", 7), (192, 192, "niqe", 1), (256, 200, "niqe", 1), (28, 28, "brisque", 7),
        (28, 28, "clipiqa", 8), (32, 32, "clipiqa", 7), (224, 300, "clipiqa", 1),
    ],
)
def test_resize_factor_is_the_smallest_integer_reaching_the_short_side(height, width, metric, factor) -> None:
    k = iqa.resize_factor(height, width, metric)
    assert k == factor and isinstance(k, int)
    minimum = iqa.IQA_METRICS.get(metric).min_short_side
    assert k * min(height, width) >= minimum and (k == 1 or (k - 1) * min(height, width) < minimum)


def test_niqe_always_gets_at_least_two_by_two_blocks() -> None:
    for side in range(4, 200):
        k = iqa.resize_factor(side, side, "niqe")
        assert (k * side) // 96 >= 2


def test_iqa_resize_shapes_range_and_grid() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 32, 24), dtype=np.uint8)
    out = iqa.iqa_resize(images, "niqe")  # short side 24 -> x8
    assert out.dtype == torch.float32 and tuple(out.shape) == (5, 3, 256, 192)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.equal(torch.round(out * 255) / 255, out)  # on the 8-bit grid
    assert tuple(iqa.iqa_resize(images, "clipiqa").shape) == (5, 3, 320, 240)  # x10


def test_iqa_resize_replicates_grey_and_keeps_large_images_as_they_are() -> None:
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, size=(2, 1, 28, 28), dtype=np.uint8)
    out = iqa.iqa_resize(torch.from_numpy(grey), "clipiqa")
    assert tuple(out.shape) == (2, 3, 224, 224)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    large = rng.integers(0, 256, size=(2, 3, 200, 210), dtype=np.uint8)
    assert torch.equal(iqa.iqa_resize(large, "niqe"), torch.from_numpy(large).float() / 255.0)


def test_iqa_resize_is_bicubic_not_nearest() -> None:
    step = np.zeros((1, 1, 28, 28), dtype=np.uint8)
    step[..., 14:] = 200
    out = iqa.iqa_resize(step, "niqe")[0, 0]
    values = set(torch.unique(torch.round(out * 255)).tolist())
    assert len(values) > 2  # interpolated values appear at the edge (and a little overshoot is clamped)
    flat = np.full((1, 3, 28, 28), 77, dtype=np.uint8)
    assert torch.all(torch.round(iqa.iqa_resize(flat, "niqe") * 255) == 77)


@pytest.mark.parametrize(
    "images",
    [
        np.zeros((1, 3, 28, 28), dtype=np.float32),
        np.zeros((1, 2, 28, 28), dtype=np.uint8),
        np.zeros((3, 28, 28), dtype=np.uint8),
        [[1, 2]],
    ],
)
def test_iqa_resize_refuses_what_is_not_uint8_nchw(images) -> None:
    with pytest.raises(FairbenchError):
        iqa.iqa_resize(images, "niqe")


def test_unknown_metric_is_a_user_error() -> None:
    with pytest.raises(FairbenchError, match="unknown IQA metric"):
        iqa.iqa_resize(np.zeros((1, 1, 8, 8), dtype=np.uint8), "psnr")
    ok, reason = iqa.available("psnr")
    assert not ok and "unknown IQA metric" in reason


# --------------------------------------------------------------------------------------------- availability


def test_available_says_pyiqa_is_missing(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyiqa", None)  # import pyiqa now fails, whether or not it is installed
    for name in ("niqe", "brisque", "clipiqa"):
        ok, reason = iqa.available(name)
        assert not ok and "pyiqa is not installed" in reason and "fairbench[quality]" in reason
    with pytest.raises(FairbenchError, match="pyiqa is not installed"):
        iqa.IQA_METRICS.get("niqe").compute(np.zeros((1, 1, 28, 28), dtype=np.uint8))


def _use_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]) -> None:
    entries = []
    for asset_id, data in files.items():
        metric = {"niqe-modelparameters": "niqe", "brisque-svm-weights": "brisque", "clip-rn50-openai": "clipiqa"}
        metric = metric[asset_id]
        entries.append({
            "id": asset_id, "path": f"t/{asset_id}.bin", "url": "https://example.invalid/w.bin",
            "sha256": hashlib.sha256(data).hexdigest(), "licence": "test", "description": "test weights",
            "used_by": [metric],
        })
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "assets": entries}))
    monkeypatch.setenv(store.MANIFEST_ENV, str(path))


def test_available_names_the_missing_weight_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(iqa, "_pyiqa_problem", lambda needs_clip: None)  # as if pyiqa were installed
    monkeypatch.delenv(store.MANIFEST_ENV, raising=False)
    ok, reason = iqa.available("niqe")
    assert not ok and "niqe_modelparameters.mat is missing" in reason
    assert str(store.asset_path("niqe-modelparameters")) in reason and "\n" not in reason
    assert iqa.available("niqe", allow_download=True)[0] is False  # FAIRBENCH_OFFLINE=1 (conftest)
    monkeypatch.setenv("FAIRBENCH_OFFLINE", "0")
    assert iqa.available("niqe", allow_download=True) == (True, "")  # would be downloaded

    monkeypatch.setenv("FAIRBENCH_OFFLINE", "1")
    _use_manifest(tmp_path, monkeypatch, {"niqe-modelparameters": b"niqe params"})
    target = store.asset_path("niqe-modelparameters")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not the params")
    ok, reason = iqa.available("niqe")
    assert not ok and "corrupt" in reason
    target.write_bytes(b"niqe params")
    assert iqa.available("niqe") == (True, "")


def test_pkg_resources_stand_in_exists_only_during_the_import(monkeypatch) -> None:
    if importlib.util.find_spec("pkg_resources") is not None:
        pytest.skip("this environment still has pkg_resources")
    with iqa._pkg_resources_shim():
        from pkg_resources import packaging  # what openai-clip's clip.py does

        assert packaging.version.parse("1.8.0") > packaging.version.parse("1.7.1")
    assert "pkg_resources" not in sys.modules


# --------------------------------------------------------------------------------------------- compute (stand-in pyiqa)


class _FakeNet:
    """Scores each image by its mean; like pyiqa's NIQE, a flat image in the batch raises LinAlgError."""

    def __init__(self, name: str, kwargs: dict) -> None:
        self.name, self.kwargs, self.batches = name, kwargs, []

    def eval(self) -> _FakeNet:
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.float32 and x.shape[1] == 3 and float(x.min()) >= 0 and float(x.max()) <= 1
        self.batches.append(tuple(x.shape))
        flat = x.flatten(1).amax(1) == x.flatten(1).amin(1)
        if bool(flat.any()):
            raise torch.linalg.LinAlgError("non-finite")
        return x.mean(dim=(1, 2, 3)).reshape(-1, 1).to(torch.float64)


@pytest.fixture
def fake_pyiqa(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    record = types.SimpleNamespace(created=[], downloads=[])
    pyiqa = types.ModuleType("pyiqa")
    pyiqa.__spec__ = importlib.machinery.ModuleSpec("pyiqa", None)
    utils = types.ModuleType("pyiqa.utils")
    download_util = types.ModuleType("pyiqa.utils.download_util")

    def download_url_to_file(url: str, *args: object, **kwargs: object) -> None:
        record.downloads.append(url)

    download_util.download_url_to_file = download_url_to_file

    def create_metric(name: str, as_loss: bool = False, device: object = None, **kwargs: object) -> _FakeNet:
        if kwargs.get("try_download"):
            sys.modules["pyiqa.utils.download_util"].download_url_to_file("https://example.invalid/w.pth", "/tmp/x")
        net = _FakeNet(name, kwargs)
        record.created.append(net)
        return net

    pyiqa.create_metric = create_metric
    for name, module in (("pyiqa", pyiqa), ("pyiqa.utils", utils), ("pyiqa.utils.download_util", download_util)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setitem(sys.modules, "clip", types.ModuleType("clip"))
    return record


def _images(n: int = 7) -> np.ndarray:
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8)
    if n > 2:
        images[2] = 9  # a flat image
    return images


def test_compute_passes_verified_local_weights_and_scores_per_image(tmp_path, monkeypatch, fake_pyiqa) -> None:
    _use_manifest(tmp_path, monkeypatch, {"niqe-modelparameters": b"params", "clip-rn50-openai": b"rn50"})
    for asset_id, data in (("niqe-modelparameters", b"params"), ("clip-rn50-openai", b"rn50")):
        path = store.asset_path(asset_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    images = _images()
    niqe = iqa.IQA_METRICS.get("niqe")
    scores = niqe.compute(images, batch_size=3)
    net = fake_pyiqa.created[-1]
    assert net.name == "niqe" and net.kwargs == {"pretrained_model_path": str(store.asset_path("niqe-modelparameters"))}
    assert scores.dtype == np.float64 and scores.shape == (7,)
    assert np.isnan(scores[2]) and np.isfinite(np.delete(scores, 2)).all()  # only the flat image is lost
    expected = iqa.iqa_resize(images, "niqe").mean(dim=(1, 2, 3)).double().numpy()
    np.testing.assert_allclose(np.delete(scores, 2), np.delete(expected, 2))
    assert net.batches[0] == (3, 3, 196, 196)  # resized per batch: 28 -> 196
    for batch_size in (1, 2, 7, 100):
        np.testing.assert_array_equal(niqe.compute(images, batch_size=batch_size), scores)

    clip_scores = iqa.IQA_METRICS.get("clipiqa").compute(images[:2], batch_size=2)
    net = fake_pyiqa.created[-1]
    assert net.kwargs == {"backbone": str(store.asset_path("clip-rn50-openai"))} and net.batches == [(2, 3, 224, 224)]
    assert clip_scores.shape == (2,) and fake_pyiqa.downloads == []


def test_compute_refuses_corrupt_weights_and_pyiqa_downloads(tmp_path, monkeypatch, fake_pyiqa) -> None:
    _use_manifest(tmp_path, monkeypatch, {"niqe-modelparameters": b"params"})
    path = store.asset_path("niqe-modelparameters")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"tampered")
    with pytest.raises(FairbenchError, match="refused"):
        iqa.IQA_METRICS.get("niqe").compute(_images())
    assert fake_pyiqa.created == []
    path.write_bytes(b"params")
    sneaky = iqa.IQAMetric("niqe", False, ["niqe-modelparameters"], "niqe", "try_download", 192)
    with pytest.raises(FairbenchError, match="pyiqa tried to download https://example.invalid/w.pth"):
        sneaky.compute(_images())
    assert fake_pyiqa.downloads == []
    assert sys.modules["pyiqa.utils.download_util"].download_url_to_file.__name__ == "download_url_to_file"  # restored


def test_brisque_weights_must_load_as_plain_tensors(tmp_path, monkeypatch, fake_pyiqa) -> None:
    good = tmp_path / "good.pth"
    torch.save((torch.randn(5), torch.rand(5, 36)), good)
    bad = tmp_path / "bad.pth"
    torch.save({"callable": np.random.default_rng}, bad)  # needs a global that weights_only refuses
    for path in (good, bad):
        data = path.read_bytes()
        _use_manifest(tmp_path, monkeypatch, {"brisque-svm-weights": data})
        target = store.asset_path("brisque-svm-weights")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        brisque = iqa.IQA_METRICS.get("brisque")
        if path is good:
            assert brisque.compute(_images(2)).shape == (2,)
        else:
            with pytest.raises(FairbenchError, match="do not load as plain tensors"):
                brisque.compute(_images(2))


# --------------------------------------------------------------------------------------------- the real pyiqa


def test_real_pyiqa_niqe_and_brisque_with_synthetic_weights(tmp_path, monkeypatch) -> None:
    """With pyiqa installed: fairbench's local-weights path, the flat-image NaN and batch-size independence hold
    for the real NIQE and BRISQUE (random but well-formed weights; the scores mean nothing)."""
    if importlib.util.find_spec("pyiqa") is None:
        pytest.skip("pyiqa is not installed (optional extra 'quality')")
    import scipy.io

    rng = np.random.default_rng(0)
    a = rng.normal(size=(36, 36))
    mat = tmp_path / "niqe.mat"
    scipy.io.savemat(mat, {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": a @ a.T / 36 + np.eye(36)})
    pth = tmp_path / "brisque.pth"
    torch.save((torch.randn(40, dtype=torch.float64), torch.rand(40, 36, dtype=torch.float64)), pth)
    files = {"niqe-modelparameters": mat.read_bytes(), "brisque-svm-weights": pth.read_bytes()}
    _use_manifest(tmp_path, monkeypatch, files)
    for asset_id, data in files.items():
        target = store.asset_path(asset_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    images = np.random.default_rng(1).integers(0, 256, size=(5, 1, 28, 28), dtype=np.uint8)
    images[1] = 0
    for name in ("niqe", "brisque"):
        assert iqa.available(name) == (True, "")
        metric = iqa.IQA_METRICS.get(name)
        scores = metric.compute(images, batch_size=2)
        assert np.isnan(scores[1]) and np.isfinite(np.delete(scores, 1)).all()
        np.testing.assert_array_equal(metric.compute(images, batch_size=5), scores)
