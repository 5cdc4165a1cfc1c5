"""EQ-Face: the authors' weight-file layout, an independent functional forward pass, the input protocol against
OpenCV (the authors' resize), refusal of bad files, batch invariance, and scoring end to end.

The real weights cannot be downloaded here (no public URL or hash), so every test uses weights it makes itself
in the authors' file layout; real UTKFace faces are scored with the full-size IR-100 layout.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from fairbench import assets as store
from fairbench import data
from fairbench.cli import app
from fairbench.errors import FairbenchError
from fairbench.metrics import eqface, iqa
from fairbench.task_registry import get_task
from tests.helpers import REPO_ROOT

TINY = eqface.IRResNetShape(stem_width=4, stage_widths=(4, 8, 8, 8), stage_blocks=(1, 2, 1, 1), embedding_dim=6,
                            quality_hidden=5)


def random_state(shape: eqface.IRResNetShape, seed: int) -> dict[str, torch.Tensor]:
    """A full state dict with every parameter and BN statistic random (scaled so nothing saturates)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in eqface.EQFaceNet(shape).state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(value.shape, generator=gen)
        else:
            fan_in = value[0].numel() if value.ndim > 1 else 1
            state[key] = torch.randn(value.shape, generator=gen) / max(1.0, fan_in**0.5)
    return state


def save_pair(state: dict[str, torch.Tensor], folder: Path, prefix: str = "module.") -> tuple[Path, Path]:
    """Save as the authors do: two `torch.save(state_dict)` files, keys prefixed like nn.DataParallel's."""
    folder.mkdir(parents=True, exist_ok=True)
    backbone = {prefix + k: v for k, v in state.items() if not k.startswith("qualtiy.")}
    quality = {prefix + k: v for k, v in state.items() if k.startswith("qualtiy.")}
    paths = folder / "backbone.pth", folder / "quality.pth"
    torch.save(backbone, paths[0])
    torch.save(quality, paths[1])
    return paths


# --------------------------------------------------------------------------------------------- architecture


def _ir_param_count(stem: int, widths: tuple[int, ...], blocks: tuple[int, ...], emb: int, hidden: int) -> int:
    """Parameters of the paper's IR-ResNet + quality head, counted by hand from the layer list."""
    total = 3 * stem * 9 + 2 * stem + stem  # stem conv, BN (weight, bias), PReLU
    cin = stem
    for width, n in zip(widths, blocks):
        for i in range(n):
            c_in = cin if i == 0 else width
            total += 2 * c_in + c_in * width * 9 + 2 * width + width + width * width * 9 + 2 * width
            if i == 0:
                total += c_in * width + 2 * width  # 1x1 projection + BN
        cin = width
    flat = widths[-1] * 49
    total += 2 * widths[-1]  # output BN
    total += flat * emb + emb + 2 * emb  # embedding Linear (with bias) + BN1d
    total += flat * hidden + 2 * hidden + hidden * 2  # quality head: Linear (no bias), BN1d, Linear (no bias)
    return total


def test_ir100_layout_matches_the_published_architecture() -> None:
    with torch.device("meta"):
        net = eqface.EQFaceNet(eqface.IR100)
    assert eqface.IR100.depth == 100
    count = sum(p.numel() for p in net.parameters())
    assert count == _ir_param_count(64, (64, 128, 256, 512), (3, 13, 30, 3), 512, 512) == 78_003_264
    state = net.state_dict()
    expected_shapes = {
        "input_layer.0.weight": (64, 3, 3, 3),
        "layer1.0.shortcut_layer.0.weight": (64, 64, 1, 1),
        "layer3.29.res_layer.4.weight": (256, 256, 3, 3),
        "layer4.2.res_layer.3.weight": (512,),
        "output_layer.0.running_var": (512,),
        "feature_layer.0.weight": (512, 25088),
        "qualtiy.0.weight": (512, 25088),
        "qualtiy.3.weight": (2, 512),
    }
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert "layer1.1.shortcut_layer.0.weight" not in state  # identity shortcut inside a stage
    assert "layer3.30.res_layer.0.weight" not in state and "qualtiy.0.bias" not in state


def _reference_quality(state: dict[str, torch.Tensor], shape: eqface.IRResNetShape, x: torch.Tensor) -> torch.Tensor:
    """The forward pass written out with torch.nn.functional from the state dict alone, in float64."""
    s = {k: v.double() for k, v in state.items()}

    def bn(y: torch.Tensor, p: str) -> torch.Tensor:
        return F.batch_norm(y, s[p + ".running_mean"], s[p + ".running_var"], s[p + ".weight"], s[p + ".bias"],
                            training=False, eps=1e-5)

    y = F.prelu(bn(F.conv2d(x.double(), s["input_layer.0.weight"], padding=1), "input_layer.1"), s["input_layer.2.weight"])
    for k, n in enumerate(shape.stage_blocks, start=1):
        for i in range(n):
            p = f"layer{k}.{i}."
            stride = 2 if i == 0 else 1
            r = F.conv2d(bn(y, p + "res_layer.0"), s[p + "res_layer.1.weight"], padding=1)
            r = F.prelu(bn(r, p + "res_layer.2"), s[p + "res_layer.3.weight"])
            r = bn(F.conv2d(r, s[p + "res_layer.4.weight"], stride=stride, padding=1), p + "res_layer.5")
            short = bn(F.conv2d(y, s[p + "shortcut_layer.0.weight"], stride=stride), p + "shortcut_layer.1") if i == 0 else y
            y = short + r
    flat = bn(y, "output_layer.0").flatten(1)
    assert flat.shape[1] == shape.stage_widths[-1] * 7 * 7
    hidden = F.relu(bn(flat @ s["qualtiy.0.weight"].T, "qualtiy.1"))
    return torch.softmax(hidden @ s["qualtiy.3.weight"].T, dim=1)[:, 0]


def test_forward_matches_a_functional_reference(tmp_path: Path) -> None:
    state = random_state(TINY, 0)
    net = eqface.load_eqface(*save_pair(state, tmp_path))
    assert net.shape == TINY and not net.training
    x = torch.randn(5, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ours = net(x)
    expected = _reference_quality(state, TINY, x)
    assert ours.shape == (5,)
    torch.testing.assert_close(ours.double(), expected, rtol=1e-5, atol=1e-6)
    assert float(expected.std()) > 1e-3, "the reference must discriminate between inputs, or it proves nothing"


# --------------------------------------------------------------------------------------------- weight files


@pytest.mark.parametrize("prefix", ["module.", ""])
def test_loads_plain_and_data_parallel_files_and_training_wrappers(tmp_path: Path, prefix: str) -> None:
    state = random_state(TINY, 2)
    b, q = save_pair(state, tmp_path, prefix)
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        direct = eqface.load_eqface(b, q)(x)
    torch.save({"state_dict": torch.load(b, weights_only=True), "epoch": 9}, tmp_path / "wrapped.pth")
    with torch.inference_mode():
        wrapped = eqface.load_eqface(tmp_path / "wrapped.pth", q)(x)
    assert torch.equal(direct, wrapped)


def test_depth_and_widths_are_read_from_the_files(tmp_path: Path) -> None:
    other = eqface.IRResNetShape(8, (8, 8, 16, 16), (3, 4, 14, 3), 10, 7)  # IR-50's block counts
    net = eqface.load_eqface(*save_pair(random_state(other, 4), tmp_path))
    assert net.shape == other and net.shape.depth == 50


def test_files_saved_without_num_batches_tracked_load(tmp_path: Path) -> None:
    state = {k: v for k, v in random_state(TINY, 5).items() if not k.endswith("num_batches_tracked")}
    net = eqface.load_eqface(*save_pair(state, tmp_path))
    assert all(int(b) == 0 for k, b in net.named_buffers() if k.endswith("num_batches_tracked"))


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def test_a_pickle_carrying_code_is_refused_before_it_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    b, q = save_pair(random_state(TINY, 6), tmp_path)
    evil = tmp_path / "evil.pth"
    torch.save({"input_layer.0.weight": torch.zeros(1), "x": _Payload(marker)}, evil)
    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is live: an unsafe load would run it
    assert marker.exists()
    marker.unlink()
    with pytest.raises(FairbenchError, match="not a loadable EQ-Face backbone"):
        eqface.load_eqface(evil, q)
    assert not marker.exists()


def _fails(tmp_path: Path, backbone: object, quality: object) -> str:
    paths = []
    for name, content in (("b.pth", backbone), ("q.pth", quality)):
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        paths.append(path)
    with pytest.raises(FairbenchError) as info:
        eqface.load_eqface(*paths)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_bad_weight_files_are_one_line_errors(tmp_path: Path) -> None:
    state = random_state(TINY, 7)
    backbone = {k: v for k, v in state.items() if not k.startswith("qualtiy.")}
    quality = {k: v for k, v in state.items() if k.startswith("qualtiy.")}
    good = tmp_path / "good.pth"
    torch.save(backbone, good)
    truncated = good.read_bytes()[: good.stat().st_size // 2]

    assert "not a loadable" in _fails(tmp_path, os.urandom(500), quality)
    assert "not a loadable" in _fails(tmp_path, truncated, quality)
    assert "got Tensor" in _fails(tmp_path, torch.zeros(3), quality)
    assert "got dict" in _fails(tmp_path, {}, quality)
    assert "not a named tensor" in _fails(tmp_path, {**backbone, "meta": [1, 2]}, quality)
    assert "backbone file given as the quality head" in _fails(tmp_path, backbone, backbone)
    assert "unexpected keys 'fc.weight'" in _fails(tmp_path, {**backbone, "fc.weight": torch.zeros(2)}, quality)
    missing = {k: v for k, v in backbone.items() if k != "layer2.1.res_layer.4.weight"}
    assert "missing 'layer2.1.res_layer.4.weight'" in _fails(tmp_path, missing, quality)
    wrong = {**quality, "qualtiy.3.weight": torch.zeros(3, 5)}
    assert "wrong shape 'qualtiy.3.weight'" in _fails(tmp_path, backbone, wrong)
    # A huge block index must not make the loader build a huge network.
    gap = {**backbone, "layer3.999999.res_layer.0.weight": torch.zeros(8)}
    assert "not numbered 0..n-1" in _fails(tmp_path, gap, quality)
    nan = {**backbone, "layer1.0.res_layer.1.weight": torch.full_like(backbone["layer1.0.res_layer.1.weight"], float("nan"))}
    assert "NaN or Inf" in _fails(tmp_path, nan, quality)
    assert "no such file" in _fails_missing(tmp_path)


def _fails_missing(tmp_path: Path) -> str:
    with pytest.raises(FairbenchError) as info:
        eqface.load_eqface(tmp_path / "nope.pth", tmp_path / "nope2.pth")
    return str(info.value)


# --------------------------------------------------------------------------------------------- input protocol


@pytest.mark.parametrize("size", [(64, 64), (128, 128), (200, 200), (28, 28), (90, 140), (1024, 1024)])
def test_preprocess_matches_the_authors_opencv_resize(size: tuple[int, int]) -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(sum(size))
    rgb = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    ours = eqface.preprocess(torch.from_numpy(rgb).permute(2, 0, 1)[None]).numpy()[0].transpose(1, 2, 0)
    theirs = (cv2.resize(rgb, (112, 112)).astype(np.float32) - 127.5) / 128.0  # test_quality.py, after BGR->RGB
    levels = np.abs(ours - theirs) * 128.0
    # OpenCV quantises its bilinear weights to 11 bits, so a pixel may round to the neighbouring grey level.
    assert levels.max() <= 1.0 + 1e-4
    assert levels.mean() < 0.2
    assert ours.dtype == np.float32 and ours.shape == (112, 112, 3)


def test_preprocess_matches_a_float_bilinear_reference_and_normalises_exactly() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (1, 1, 50, 70), dtype=np.uint8)
    ours = eqface.preprocess(torch.from_numpy(img)).numpy()[0]
    assert np.array_equal(ours[0], ours[1]) and np.array_equal(ours[1], ours[2])  # grey replicated

    def coords(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(112) + 0.5) * n_in / 112 - 0.5, 0.0)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    y0, y1, fy = coords(50)
    x0, x1, fx = coords(70)
    g = img[0, 0].astype(np.float64)
    top = g[y0][:, x0] * (1 - fx) + g[y0][:, x1] * fx
    bottom = g[y1][:, x0] * (1 - fx) + g[y1][:, x1] * fx
    expected = (np.clip(np.round(top * (1 - fy)[:, None] + bottom * fy[:, None]), 0, 255) - 127.5) / 128.0
    agree = np.isclose(ours[0], expected, atol=1e-6)
    assert agree.mean() > 0.99 and np.abs(ours[0] - expected).max() <= 1 / 128 + 1e-6  # ties may round apart

    exact = rng.integers(0, 256, (2, 3, 112, 112), dtype=np.uint8)  # already 112: no resize, no rounding
    np.testing.assert_array_equal(eqface.preprocess(torch.from_numpy(exact)).numpy(), (exact - 127.5) / 128.0)


# --------------------------------------------------------------------------------------------- scoring


def test_a_score_never_depends_on_batch_or_neighbours(tmp_path: Path) -> None:
    net = eqface.load_eqface(*save_pair(random_state(TINY, 8), tmp_path))
    images = torch.from_numpy(np.random.default_rng(9).integers(0, 256, (37, 3, 40, 40), dtype=np.uint8))
    everything = eqface.score_faces(net, images)
    assert everything.dtype == np.float64 and np.all((everything > 0) & (everything < 1))
    assert np.ptp(everything) > 1e-3
    for start, stop in [(5, 6), (3, 20), (16, 37), (0, 17)]:
        assert np.array_equal(eqface.score_faces(net, images[start:stop]), everything[start:stop])
    reordered = torch.flip(images, dims=[0])
    assert np.array_equal(eqface.score_faces(net, reordered), everything[::-1])


def _place_weights(state: dict[str, torch.Tensor]) -> None:
    backbone, quality = store.asset_path(eqface.BACKBONE_ASSET), store.asset_path(eqface.QUALITY_ASSET)
    assert backbone.parent == quality.parent
    save_pair(state, backbone.parent)


def test_registry_metric_needs_the_user_files_and_says_where(tmp_path: Path) -> None:
    metric = iqa.IQA_METRICS.get("eqface")
    assert metric.higher_is_better and set(metric.assets) == {"eqface-backbone", "eqface-quality"}
    ok, why = iqa.available("eqface")
    assert not ok and "backbone.pth" in why and str(store.asset_path("eqface-backbone")) in why
    assert "user-supplied" in why and "\n" not in why
    images = np.random.default_rng(1).integers(0, 256, (3, 3, 64, 64), dtype=np.uint8)
    with pytest.raises(FairbenchError, match="backbone.pth"):
        metric.compute(images)

    state = random_state(TINY, 10)
    _place_weights(state)
    assert iqa.available("eqface") == (True, "")
    scores = metric.compute(images, batch_size=1)
    direct = eqface.score_faces(eqface.load_eqface(*save_pair(state, tmp_path / "direct")), torch.from_numpy(images))
    assert np.array_equal(scores, direct)
    with pytest.raises(FairbenchError, match="uint8"):
        metric.compute(images.astype(np.float32))


def test_full_size_ir100_scores_real_utkface_crops(tmp_path: Path, utkface_crops: Path) -> None:
    """The release's IR-100 layout end to end on real aligned faces (weights random: no real ones here)."""
    from PIL import Image

    files = sorted(utkface_crops.glob("*.jpg"))[:16]
    assert len(files) == 16
    faces = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files]).transpose(0, 3, 1, 2)
    assert faces.shape[1:] == (3, 200, 200)
    torch.manual_seed(0)
    b, q = save_pair(eqface.EQFaceNet(eqface.IR100).state_dict(), tmp_path)
    net = eqface.load_eqface(b, q)
    assert net.shape == eqface.IR100
    scores = eqface.score_faces(net, torch.from_numpy(np.ascontiguousarray(faces)))
    assert scores.shape == (16,) and np.all(np.isfinite(scores)) and np.all((scores >= 0) & (scores <= 1))
    assert np.array_equal(eqface.score_faces(net, torch.from_numpy(np.ascontiguousarray(faces[3:5]))), scores[3:5])


def test_fairbench_score_reports_eqface_overall_and_per_group(tmp_path: Path) -> None:
    """A custom task asking for EQ-Face: skipped with the placement hint, then computed once the files exist."""
    root = REPO_ROOT
    text = (root / "tasks" / "digits-bicolor.yaml").read_text()
    custom = tmp_path / "my-faces.yaml"
    custom.write_text(
        text.replace("\nid: digits-bicolor", "\nid: my-faces").replace("aliases: [digits]", "aliases: []")
        .replace("  iqa: []", "  iqa: [eqface]").replace("metrics: [fid, fid_balanced, fid_intra, kid, prdc, vendi]", "metrics: [fid]")
    )
    split = data.load_split(get_task("digits-bicolor"), "test")
    npz = tmp_path / "set.npz"
    images = split.images.numpy()
    np.savez(npz, images=images.transpose(0, 2, 3, 1), labels=split.labels.numpy())

    def score() -> dict:
        result = CliRunner().invoke(app, ["score", "--task", str(custom), "--images", str(npz), "--json",
                                          "--device", "cpu", "--out", str(tmp_path / "r.json")])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
        return json.loads(result.stdout)

    first = score()
    assert "eqface" not in first["metrics"] and "backbone.pth" in first["skipped"]["eqface"]
    assert "fid" in first["metrics"]  # the rest is still computed

    state = random_state(TINY, 11)
    _place_weights(state)
    second = score()
    net = eqface.load_eqface(*save_pair(state, tmp_path / "direct"))
    per_image = eqface.score_faces(net, torch.from_numpy(images))
    got = second["metrics"]["eqface"]
    assert got["higher_is_better"] is True
    assert got["value"] == pytest.approx(per_image.mean(), rel=1e-12)
    assert got["ci95"][0] <= got["value"] <= got["ci95"][1]
    # The shipped digits judge is perfect on this split, so its groups are the true backgrounds.
    groups = split.groups.numpy()
    for g, name in enumerate(["black", "white"]):
        assert second["per_group"]["eqface"][name]["value"] == pytest.approx(per_image[groups == g].mean(), rel=1e-12)
    assert "eqface" not in second["skipped"]
    placed = {a: hashlib.sha256(store.asset_path(a).read_bytes()).hexdigest() for a in ("eqface-backbone", "eqface-quality")}
    assert second["iqa_weights"] == {"eqface": placed} and "eqface" not in first["iqa_weights"]
