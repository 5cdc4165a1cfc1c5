"""The `inception` feature network runs through clean-fid 0.1.35's own code, over weights from the asset manager.

Real Inception weights cannot be downloaded here, so a tiny TorchScript with the structure clean-fid's
`InceptionV3W` uses (`base.layers.forward(x)` -> N x 2048 x 1 x 1) stands in for `inception-2015-12-05.pt`,
placed in the isolated fairbench home and pinned by its sha256 in a test manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

cleanfid_fid = pytest.importorskip("cleanfid.fid")
from cleanfid import downloads_helper, inception_torchscript, resize  # noqa: E402

from fairbench import assets, features  # noqa: E402
from fairbench.errors import FairbenchError  # noqa: E402
from fairbench.features import load_feature_network  # noqa: E402

# torch >= 2.9 marks TorchScript deprecated; clean-fid's weights exist only as TorchScript.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning")

ASSET = "inception-2015-12-05"
CLEAN_FID_DEFAULT = Path("/tmp") / f"{ASSET}.pt"  # where clean-fid's feature_extractor() would download it


class _FakeLayers(nn.Module):
    """Average-pool to 3 x 4 x 4, then a fixed linear map to 2048 features, shaped N x 2048 x 1 x 1."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(48, 2048)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(2048, 48, generator=g))
            self.fc.bias.copy_(torch.randn(2048, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(x).flatten(1))[:, :, None, None]


class _FakeInception(nn.Module):
    """The call signature of NVIDIA's TorchScript: `layers` on normalised 299 x 299 input, and a top-level
    forward(x, return_features) that clean-fid only uses with resize_inside=True."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = _FakeLayers()

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return self.layers((x - 128) / 128)


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fake-inception") / f"{ASSET}.pt"
    torch.jit.script(_FakeInception().eval()).save(str(path))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sha256: str) -> None:
    entry = {
        "id": ASSET, "path": f"clean-fid/{ASSET}.pt", "url": f"https://example.invalid/{ASSET}.pt",
        "sha256": sha256, "licence": "test", "description": "a tiny stand-in", "used_by": ["inception"],
    }
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "assets": [entry]}))
    monkeypatch.setenv(assets.MANIFEST_ENV, str(path))


@pytest.fixture
def fake_asset(fake_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The fake TorchScript at the asset's place in the isolated home, pinned by a test manifest; its sha256."""
    sha = _sha(fake_weights)
    _manifest(tmp_path, monkeypatch, sha)
    target = assets.asset_path(ASSET)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(fake_weights, target)
    return sha


@pytest.fixture
def no_download(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every way clean-fid (or anything) could download is a failure; returns the list of attempts."""
    attempts: list[str] = []

    def refuse(name: str):
        def fn(*args: object, **kwargs: object):
            attempts.append(name)
            raise AssertionError(f"{name} called: {args}")
        return fn

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(urllib.request, "urlopen", refuse("urlopen"))
    for module in (downloads_helper, inception_torchscript):
        monkeypatch.setattr(module, "check_download_inception", refuse("check_download_inception"))
    monkeypatch.setattr(cleanfid_fid, "build_feature_extractor", refuse("build_feature_extractor"))
    monkeypatch.setattr(sys.modules["cleanfid.features"], "feature_extractor", refuse("feature_extractor"))
    return attempts


def _images(n: int, c: int = 3, h: int = 12, w: int = 10, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def _expected(weights: Path, images: torch.Tensor) -> np.ndarray:
    """Independently: clean-fid's "clean" resizer per HWC image, then the TorchScript's layers on (x-128)/128."""
    fn = resize.make_resizer("PIL", False, "bicubic", (299, 299))
    rgb = images.expand(-1, 3, -1, -1).numpy()
    x = torch.from_numpy(np.stack([fn(im.transpose(1, 2, 0)).transpose(2, 0, 1) for im in rgb]))
    module = torch.jit.load(str(weights))
    with torch.no_grad():
        return module.layers((x - 128) / 128).reshape(len(x), 2048).double().numpy()


# --------------------------------------------------------------------------------------- through clean-fid


def test_features_are_computed_by_clean_fid(fake_asset, fake_weights, monkeypatch, no_download) -> None:
    calls: dict[str, int] = {"get_model_features": 0, "build_resizer": 0, "resize": 0, "forward": 0}
    real_gmf, real_build = cleanfid_fid.get_model_features, cleanfid_fid.build_resizer
    real_forward = inception_torchscript.InceptionV3W.forward
    models = []

    def gmf(G, model, **kwargs):
        calls["get_model_features"] += 1
        models.append(model)
        assert kwargs["mode"] == "clean" and kwargs.get("custom_fn_resize") is None
        return real_gmf(G, model, **kwargs)

    def build(mode):
        calls["build_resizer"] += 1
        assert mode == "clean"
        fn = real_build(mode)

        def counted(x):
            calls["resize"] += 1
            return fn(x)
        return counted

    def forward(self, x):
        calls["forward"] += 1
        return real_forward(self, x)

    monkeypatch.setattr(cleanfid_fid, "get_model_features", gmf)
    monkeypatch.setattr(cleanfid_fid, "build_resizer", build)
    monkeypatch.setattr(inception_torchscript.InceptionV3W, "forward", forward)

    net = load_feature_network("inception", fake_asset)
    assert (net.id, net.sha256, net.dim) == ("inception", fake_asset, 2048)
    assert isinstance(net.extractor, inception_torchscript.InceptionV3W) and not net.extractor.resize_inside
    images = _images(5)
    out = net.extract(images, batch_size=2, device="cpu")
    assert out.shape == (5, 2048) and out.dtype == np.float64
    assert calls == {"get_model_features": 3, "build_resizer": 3, "resize": 5, "forward": 3}
    assert all(m is net.extractor for m in models)  # our loaded extractor, not one clean-fid built
    np.testing.assert_allclose(out, _expected(fake_weights, images), rtol=1e-5, atol=1e-5)
    assert no_download == []


def test_batch_size_does_not_change_features(fake_asset) -> None:
    net = load_feature_network("inception", fake_asset)
    images = _images(5, seed=1)
    one = net.extract(images, 1, "cpu")
    for bs in (2, 5, 64):  # identical inputs; float32 matrix kernels may block differently per batch (~1e-7)
        np.testing.assert_allclose(net.extract(images, bs, "cpu"), one, rtol=1e-6, atol=1e-5)
    assert net.extract(images[:0], 4, "cpu").shape == (0, 2048)


def test_grey_images_are_replicated_to_rgb(fake_asset, fake_weights) -> None:
    net = load_feature_network("inception", fake_asset)
    grey = _images(3, c=1, h=8, w=8, seed=2)
    out = net.extract(grey, 2, "cpu")
    np.testing.assert_array_equal(out, net.extract(grey.repeat(1, 3, 1, 1), 2, "cpu"))
    np.testing.assert_allclose(out, _expected(fake_weights, grey), rtol=1e-5, atol=1e-5)
    prepared = features.inception_inputs(grey)
    assert prepared.shape == (3, 3, 299, 299)
    assert torch.equal(prepared[:, 0], prepared[:, 1]) and torch.equal(prepared[:, 0], prepared[:, 2])
    with pytest.raises(FairbenchError, match="1- or 3-channel"):
        net.extract(_images(1, c=2), 1, "cpu")
    with pytest.raises(FairbenchError, match="uint8"):
        net.extract(_images(1).float(), 1, "cpu")


def test_extraction_leaves_the_global_rng_alone(fake_asset) -> None:
    """clean-fid draws latents from torch's global generator for its G; fairbench forks the RNG around it."""
    net = load_feature_network("inception", fake_asset)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    net.extract(_images(3), 2, "cpu")
    assert torch.equal(torch.rand(3), expected)


def test_no_network_and_nothing_in_clean_fids_tmp(fake_asset, monkeypatch, no_download) -> None:
    monkeypatch.setenv("FAIRBENCH_OFFLINE", "0")  # downloads allowed: still none, the verified asset is used
    before = CLEAN_FID_DEFAULT.stat() if CLEAN_FID_DEFAULT.exists() else None
    net = load_feature_network("inception", fake_asset)
    net.extract(_images(2), 2, "cpu")
    after = CLEAN_FID_DEFAULT.stat() if CLEAN_FID_DEFAULT.exists() else None
    assert before == after
    assert no_download == []
    assert os.path.dirname(inception_torchscript.__file__)  # clean-fid really is the installed package


# --------------------------------------------------------------------------------------- refusals


def test_wrong_hash_asset_is_refused_before_clean_fid_loads_it(fake_weights, tmp_path, monkeypatch) -> None:
    built = []
    monkeypatch.setattr(inception_torchscript.InceptionV3W, "__init__", lambda *a, **k: built.append(a))
    _manifest(tmp_path, monkeypatch, "0" * 64)  # the manifest pins other bytes
    target = assets.asset_path(ASSET)
    target.parent.mkdir(parents=True)
    shutil.copy(fake_weights, target)
    with pytest.raises(FairbenchError, match="refused"):
        load_feature_network("inception", _sha(fake_weights))
    assert built == []


def test_verified_asset_that_is_not_the_tasks_network_is_refused(fake_asset, monkeypatch) -> None:
    built = []
    monkeypatch.setattr(inception_torchscript.InceptionV3W, "__init__", lambda *a, **k: built.append(a))
    with pytest.raises(FairbenchError, match="does not match the pinned feature network"):
        load_feature_network("inception", "f" * 64)
    assert built == []


def test_missing_asset_passes_the_require_message_through(fake_weights, tmp_path, monkeypatch) -> None:
    _manifest(tmp_path, monkeypatch, _sha(fake_weights))
    with pytest.raises(FairbenchError) as info:
        load_feature_network("inception", _sha(fake_weights))
    assert str(info.value).startswith(f"asset '{ASSET}' is missing: place {ASSET}.pt")
    assert str(assets.asset_path(ASSET)) in str(info.value)


def test_without_clean_fid_a_clear_error_and_no_download(fake_asset, monkeypatch) -> None:
    net = load_feature_network("inception", fake_asset)
    for name in [m for m in sys.modules if m == "cleanfid" or m.startswith("cleanfid.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import cleanfid...` now raises ImportError
    required = []
    monkeypatch.setattr(assets, "require", lambda *a, **k: required.append(a))
    message = "inception FID needs clean-fid: pip install 'fairbench[quality]'"
    with pytest.raises(FairbenchError) as info:
        load_feature_network("inception", fake_asset)
    assert str(info.value) == message
    assert required == []  # not even the asset is fetched
    with pytest.raises(FairbenchError, match="needs clean-fid"):
        net.extract(_images(1), 1, "cpu")
