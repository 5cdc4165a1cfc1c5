"""The `clip` feature network: open_clip's RN50 image tower over weights read from a TorchScript archive as data.

OpenAI's `RN50.pt` cannot be downloaded here, so a randomly initialised open_clip RN50 (the same architecture,
float16 weights like OpenAI's file) is written as a genuine TorchScript archive under OpenAI's tensor names, pinned
by its sha256 in a test manifest, and loaded the way the real file is. Features are checked against open_clip's own
`encode_image` on images preprocessed independently (torchvision transforms written out here).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from tests.helpers import REPO_ROOT

open_clip = pytest.importorskip("open_clip", reason="the clip feature network needs open_clip_torch (.[test])")
from torchvision import transforms as T  # noqa: E402

from fairbench import assets  # noqa: E402
from fairbench.features import clip as features_clip  # noqa: E402
from fairbench.errors import FairbenchError  # noqa: E402
from fairbench.features import load_feature_network  # noqa: E402
from fairbench.features.torchscript_tensors import torchscript_tensors  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.:FutureWarning", "ignore::DeprecationWarning")

ASSET = "clip-rn50-openai"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI's published CLIP normalisation
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# OpenAI's archive holds these beside the weights; open_clip drops them, so must fairbench.
OPENAI_SCALARS = {"input_resolution": 224, "context_length": 77, "vocab_size": 49408}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_torchscript(tensors: dict[str, torch.Tensor], path: Path) -> Path:
    """A TorchScript archive (torch.jit.save) whose module tree holds `tensors` under their dotted names."""
    root = nn.Module()
    for key, value in tensors.items():
        *parents, leaf = key.split(".")
        module = root
        for part in parents:
            if part not in module._modules:
                module.add_module(part, nn.Module())
            module = module._modules[part]
        module.register_buffer(leaf, value)
    torch.jit.script(root).save(str(path))
    return path


def _manifest(folder: Path, mp: pytest.MonkeyPatch, sha256: str) -> None:
    entry = {
        "id": ASSET, "path": "clip/RN50.pt", "url": "https://example.invalid/RN50.pt", "sha256": sha256,
        "licence": "test", "description": "a randomly initialised stand-in", "used_by": ["clip"],
    }
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "assets": [entry]}))
    mp.setenv(assets.MANIFEST_ENV, str(path))


def _place(weights: Path, folder: Path, mp: pytest.MonkeyPatch, sha256: str | None = None) -> str:
    """`weights` at the asset's place in the current fairbench home, pinned by a test manifest."""
    sha = sha256 or _sha(weights)
    _manifest(folder, mp, sha)
    target = assets.asset_path(ASSET)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(weights, target)  # 200 MB: a hard link, not a copy
    except OSError:
        shutil.copy(weights, target)
    return sha


@pytest.fixture(scope="module")
def clip_case(tmp_path_factory: pytest.TempPathFactory):
    """(network loaded through the registry, the open_clip model it must equal, sha256, calls to unpicklers)."""
    torch.manual_seed(0)
    model = open_clip.create_model("RN50-quickgelu", pretrained=None)
    open_clip.model.convert_weights_to_fp16(model)  # OpenAI's file is float16 where open_clip converts
    tensors = dict(model.state_dict())
    tensors.update({k: torch.tensor(v) for k, v in OPENAI_SCALARS.items()})
    tensors["transformer.resblocks.0.attn_mask"] = torch.zeros(77, 77)  # a plain attribute, not a weight
    folder = tmp_path_factory.mktemp("clip-weights")
    weights = _write_torchscript(tensors, folder / "RN50.pt")
    del tensors
    calls: list[str] = []

    def refuse(name):
        def fn(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called")
        return fn

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRBENCH_HOME", str(tmp_path_factory.mktemp("clip-home")))
        mp.setenv("FAIRBENCH_OFFLINE", "1")
        sha = _place(weights, folder, mp)
        for owner, name in ((torch.jit, "load"), (torch, "load"), (pickle, "load"), (pickle, "loads"),
                            (pickle, "Unpickler"), (open_clip, "load_openai_model")):
            mp.setattr(owner, name, refuse(f"{getattr(owner, '__name__', owner)}.{name}"))
        net = load_feature_network("clip", sha)
    model = model.float().eval()  # the float16 values, exactly, in float32: what the archive holds
    return net, model, sha, calls, weights


def _images(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def _expected(model: nn.Module, images: torch.Tensor) -> np.ndarray:
    """Independently: CLIP's preprocessing as torchvision transforms, then open_clip's `encode_image`."""
    from PIL import Image

    prep = T.Compose([
        T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(),
        T.Normalize(CLIP_MEAN, CLIP_STD),
    ])
    rgb = images.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()
    x = torch.stack([prep(Image.fromarray(np.ascontiguousarray(a), "RGB")) for a in rgb])
    with torch.no_grad():
        return model.encode_image(x).double().numpy()


# --------------------------------------------------------------------------------------- features


def test_features_are_open_clips_encode_image(clip_case) -> None:
    net, model, sha, calls, _ = clip_case
    assert (net.id, net.sha256, net.dim) == ("clip", sha, 1024)
    assert calls == []  # no unpickler and no TorchScript loader ran while loading
    for images in (_images(3), _images(2, h=28, w=40, seed=1)):  # square; and short-side resize + center crop
        out = net.extract(images, batch_size=2, device="cpu")
        assert out.shape == (len(images), 1024) and out.dtype == np.float64
        _assert_same_features(out, _expected(model, images))


def _assert_same_features(out: np.ndarray, expected: np.ndarray) -> None:
    """Equal up to float32 rounding, also after removing the mean image: a random network's features are
    mostly a constant, and what varies between images must match too."""
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    centred_out, centred_expected = out - out.mean(0), expected - expected.mean(0)
    spread = np.abs(centred_expected).max()
    assert spread > 1e-4 * np.abs(expected).max()  # the features do vary with the image (a little, when random)
    np.testing.assert_allclose(centred_out, centred_expected, rtol=0, atol=1e-2 * spread)


def test_batch_size_does_not_change_features(clip_case) -> None:
    net = clip_case[0]
    images = _images(4, seed=2)
    one = net.extract(images, 1, "cpu")
    scale = np.abs(one).max()
    for bs in (3, 4, 250):  # per-image preprocessing; float32 kernels may block differently per batch
        np.testing.assert_allclose(net.extract(images, bs, "cpu"), one, rtol=1e-5, atol=1e-6 * scale)
    assert net.extract(images[:0], 4, "cpu").shape == (0, 1024)


def test_grey_images_are_replicated_and_inputs_are_clips(clip_case) -> None:
    net, model = clip_case[0], clip_case[1]
    grey = _images(2, c=1, h=8, w=8, seed=3)
    prepared = features_clip.clip_inputs(grey)
    assert prepared.shape == (2, 3, 224, 224)
    # CLIP's normalisation differs per channel, so equal grey channels come out as (x - mean_c) / std_c
    raw = prepared * torch.tensor(CLIP_STD)[:, None, None] + torch.tensor(CLIP_MEAN)[:, None, None]
    assert torch.allclose(raw[:, 0], raw[:, 1], atol=1e-6) and torch.allclose(raw[:, 0], raw[:, 2], atol=1e-6)
    np.testing.assert_allclose(net.extract(grey, 2, "cpu"), net.extract(grey.repeat(1, 3, 1, 1), 2, "cpu"),
                               rtol=1e-5, atol=1e-6)
    _assert_same_features(net.extract(grey, 2, "cpu"), _expected(model, grey))
    assert "224" in net.resize_rule and "bicubic" in net.resize_rule and open_clip.__version__ in net.resize_rule
    with pytest.raises(FairbenchError, match="1- or 3-channel"):
        net.extract(_images(1, c=2), 1, "cpu")
    with pytest.raises(FairbenchError, match="uint8"):
        net.extract(_images(1).float(), 1, "cpu")


# --------------------------------------------------------------------------------------- the archive reader


class _Small(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).half()
        self.head = nn.Linear(4, 2)
        self.register_buffer("counts", torch.arange(6).reshape(2, 3).t())  # non-contiguous

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x.half()).float().mean((2, 3)))


@pytest.mark.parametrize("how", ["script", "trace"])
def test_reader_gives_what_torch_jit_load_gives(tmp_path, how) -> None:
    module = _Small().eval()
    saved = torch.jit.script(module) if how == "script" else torch.jit.trace(module, torch.zeros(1, 3, 5, 5))
    path = tmp_path / "m.pt"
    saved.save(str(path))
    ours = torchscript_tensors(path)
    theirs = torch.jit.load(str(path)).state_dict()  # our own file: fine to run here, as the reference
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert ours[key].dtype == value.dtype and torch.equal(ours[key], value), key


def test_reader_never_runs_what_the_pickle_asks_for(tmp_path) -> None:
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    data = pickle.dumps({"weight": Payload()}, protocol=2)
    pickle.loads(data)  # the payload is live: unpickling runs it
    assert marker.is_dir()
    marker.rmdir()
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("evil/data.pkl", data)
        z.writestr("evil/constants.pkl", pickle.dumps((), protocol=2))
    with pytest.raises(FairbenchError, match="holds no tensors"):
        torchscript_tensors(path)
    assert not marker.exists()


def test_reader_refuses_truncated_storages_and_other_files(tmp_path) -> None:
    path = tmp_path / "m.pt"
    torch.jit.script(_Small()).save(str(path))
    broken = tmp_path / "broken.pt"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            payload = src.read(item)
            dst.writestr(item, payload[:-2] if item.filename.endswith("/data/0") else payload)
    with pytest.raises(FairbenchError, match="storage 0"):
        torchscript_tensors(broken)
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"not a zip")
    with pytest.raises(FairbenchError, match="cannot read the TorchScript archive"):
        torchscript_tensors(plain)
    with zipfile.ZipFile(tmp_path / "proto4.pt", "w") as z:  # protocol 4 (STACK_GLOBAL): not what TorchScript writes
        z.writestr("p/data.pkl", pickle.dumps(Path("x"), protocol=4))
    with pytest.raises(FairbenchError, match="unsupported pickle opcode"):
        torchscript_tensors(tmp_path / "proto4.pt")


# --------------------------------------------------------------------------------------- refusals


def test_not_clip_rn50_is_refused(tmp_path, monkeypatch) -> None:
    weights = _write_torchscript({"visual.conv1.weight": torch.zeros(2, 3, 3, 3)}, tmp_path / "RN50.pt")
    sha = _place(weights, tmp_path, monkeypatch)
    with pytest.raises(FairbenchError, match="not OpenAI's CLIP RN50: .* tensors are missing"):
        load_feature_network("clip", sha)


def test_wrong_or_missing_weights_are_refused(tmp_path, monkeypatch) -> None:
    weights = _write_torchscript({"w": torch.zeros(2)}, tmp_path / "RN50.pt")
    read = []
    monkeypatch.setattr("fairbench.features.torchscript_tensors.torchscript_tensors", lambda *a: read.append(a))
    _manifest(tmp_path, monkeypatch, _sha(weights))
    with pytest.raises(FairbenchError) as info:  # offline, not placed: require's one-line message
        load_feature_network("clip", _sha(weights))
    assert str(info.value).startswith(f"asset '{ASSET}' is missing") and str(assets.asset_path(ASSET)) in str(info.value)
    sha = _place(weights, tmp_path, monkeypatch)
    with pytest.raises(FairbenchError, match="does not match the pinned feature network"):
        load_feature_network("clip", "f" * 64)  # verified file, but not the network the task pins
    assert sha and read == []


def test_without_open_clip_a_clear_error_and_no_download(monkeypatch) -> None:
    for name in [m for m in sys.modules if m == "open_clip" or m.startswith("open_clip.")]:
        monkeypatch.setitem(sys.modules, name, None)
    required = []
    monkeypatch.setattr(assets, "require", lambda *a, **k: required.append(a))
    with pytest.raises(FairbenchError) as info:
        load_feature_network("clip", "0" * 64)
    assert str(info.value) == "the clip feature network needs open_clip: pip install 'fairbench[clip]'"
    assert required == []


# --------------------------------------------------------------------------------------- scoring and the board


def test_score_with_feature_network_clip_records_it_and_the_board_shows_it(clip_case, tmp_path, monkeypatch) -> None:
    """`fairbench score --feature-network clip` end to end (CLI, scoring, quality, result, leaderboard), with the
    registry's loader handing back the network the fixture loaded (loading itself is tested above)."""
    from typer.testing import CliRunner

    from fairbench import features
    from fairbench.cli import app
    from fairbench.board import build_leaderboard, read_results, render_markdown
    from fairbench.metrics import frechet
    from fairbench.task_registry import load_task_file

    net, _, sha, _, weights = clip_case
    _manifest(tmp_path, monkeypatch, sha)  # the manifest pins the stand-in, as the real one pins RN50.pt
    loaded = []

    def fake_load(id, sha256, device="cpu"):
        loaded.append((id, sha256))
        return net

    monkeypatch.setattr(features, "load_feature_network", fake_load)
    text = (REPO_ROOT / "tasks" / "digits-bicolor.yaml").read_text()
    text = (text.replace("\nid: digits-bicolor", "\nid: clip-digits").replace("aliases: [digits]", "aliases: []")
            .replace("reference: {part: all, start: 1450, stop: 1797}", "reference: {part: all, start: 1450, stop: 1462}")
            .replace("metrics: [fid, fid_balanced, fid_intra, kid, prdc, vendi]", "metrics: [fid]").replace("n_resamples: 100", "n_resamples: 4"))
    task_file = tmp_path / "clip-digits.yaml"
    task_file.write_text(text)
    g = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (10, 16, 16, 1), generator=g, dtype=torch.uint8).numpy()
    np.savez(tmp_path / "gen.npz", images=images, labels=np.arange(10))
    out = tmp_path / "results" / "clip-digits" / "gen" / "seed0.json"
    result = CliRunner().invoke(app, ["score", "--task", str(task_file), "--images", str(tmp_path / "gen.npz"),
                                      "--feature-network", "clip", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert loaded == [("clip", sha)]
    import json

    saved = json.loads(out.read_text())
    assert saved["feature_network"] == {"id": "clip", "sha256": sha, "dim": 1024, "resize_rule": net.resize_rule}
    # the fid value is the Fréchet distance between CLIP features of the images and of the reference split
    from fairbench import data

    task = load_task_file(task_file)
    reference = data.load_split(task, "reference", None).images
    expected = frechet.frechet_distance(
        frechet.feature_stats(net.extract(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), 250, "cpu")),
        frechet.feature_stats(net.extract(reference, 250, "cpu")),
    )
    assert saved["metrics"]["fid"]["value"] == pytest.approx(expected, rel=1e-9)
    board = render_markdown(build_leaderboard(read_results(tmp_path / "results")))
    assert f"feature network: clip ({sha[:12]})" in board and "fid@clip" in board
    assert "inception" not in board.lower()
