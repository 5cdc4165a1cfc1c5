"""The `dinov2` feature network: fairbench's ViT over Meta's released state dicts, fed by dgm-eval's preprocessing.

The released files cannot be downloaded here, so state dicts with the published key names and shapes are made
from random numbers: the full ViT-L/14, B/14 and S/14 layouts are checked on the meta device (no memory), a
real-size ViT-S/14 file is written with torch.save and loaded through the asset manifest (trust on first use)
and the registry, and forward passes run on a tiny config (width 32, depth 2, the released 14 px patches and
37x37 position grid). The forward pass is checked against a float64 numpy computation written out here, with
dgm-eval's transform (torchvision) as the preprocessing.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from scipy.special import erf
from torchvision import transforms as T

from fairbench import assets
from fairbench.errors import FairbenchError
from fairbench.features import FEATURE_NETWORKS, load_feature_network
from fairbench.features import dinov2 as D
from fairbench.scoring.quality import select_feature_network, with_feature_network
from fairbench.task_registry import FeatureRef, get_task

TINY = D.VitConfig(dim=32, depth=2, heads=4)  # the released patch size and position grid, small width
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Parameter counts on timm's model cards for vit_{small,base,large}_patch14_dinov2.lvd142m (timm loads Meta's
# weights into the same layout; millions, rounded to 0.1).
PUBLISHED_MILLIONS = {"dinov2-vits14": 22.1, "dinov2-vitb14": 86.6, "dinov2-vitl14": 304.4}


def _random_state(cfg: D.VitConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """The published keys and shapes, random values: non-trivial norms, biases and layer scales, so every
    term of the forward pass matters."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in D.published_layout(cfg).items():
        x = torch.randn(shape, generator=g)
        if key.endswith(("norm1.weight", "norm2.weight", "norm.weight")):
            x = 1 + 0.1 * x
        elif key.endswith("gamma"):
            x = 0.5 + 0.1 * x
        elif key.endswith("bias") or key in ("cls_token", "pos_embed", "mask_token"):
            x = 0.1 * x
        else:  # a weight: scaled by its fan-in
            x = x / np.sqrt(np.prod(shape[1:]))
        state[key] = x
    return state


def _images(n: int, c: int = 3, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


@pytest.fixture(scope="module")
def tiny() -> tuple[D.DinoV2Network, dict[str, torch.Tensor]]:
    state = _random_state(TINY)
    return D.DinoV2Network("dinov2-tiny", D.vit_from_state_dict(state, TINY), "0" * 64), state


# --------------------------------------------------------------------------------------- layout


@pytest.mark.parametrize("network_id", sorted(D.VARIANTS))
def test_the_models_are_the_published_layout(network_id: str) -> None:
    cfg = D.VARIANTS[network_id]
    with torch.device("meta"):  # ViT-L/14 without its 1.2 GB
        vit = D.DinoV2ViT(cfg)
    shapes = {k: tuple(v.shape) for k, v in vit.state_dict().items()}
    assert shapes == D.published_layout(cfg)
    assert round(sum(np.prod(s) for s in shapes.values()) / 1e6, 1) == PUBLISHED_MILLIONS[network_id]
    assert shapes["pos_embed"] == (1, 1 + 37 * 37, cfg.dim)  # trained at 518 px: a 37x37 grid of 14 px patches
    assert shapes["patch_embed.proj.weight"] == (cfg.dim, 3, 14, 14)
    assert {k.split(".")[1] for k in shapes if k.startswith("blocks.")} == {str(i) for i in range(cfg.depth)}
    block0 = sorted(k.removeprefix("blocks.0.") for k in shapes if k.startswith("blocks.0."))
    assert block0 == sorted([
        "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
        "ls1.gamma", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight",
        "mlp.fc2.bias", "ls2.gamma",
    ])
    assert {"cls_token", "mask_token", "norm.weight", "norm.bias"} <= set(shapes)
    norms = [m for m in vit.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * cfg.depth + 1 and {m.eps for m in norms} == {1e-6}  # the official norm_layer
    assert D.VARIANTS[D.ALIASES["dinov2"]] == D.VARIANTS["dinov2-vitl14"]  # `dinov2` is ViT-L/14 (dgm-eval)


def test_a_missing_extra_or_misshapen_key_is_refused_by_name() -> None:
    state = _random_state(TINY)
    D.vit_from_state_dict(state, TINY)  # the published set loads
    gone = {k: v for k, v in state.items() if k != "blocks.1.ls2.gamma"}
    with pytest.raises(FairbenchError, match=r"f\.pth: .*missing blocks\.1\.ls2\.gamma$"):
        D.vit_from_state_dict(gone, TINY, "f.pth")
    with pytest.raises(FairbenchError, match=r"unexpected register_tokens$"):  # the _reg4 files' extra tensor
        D.vit_from_state_dict({**state, "register_tokens": torch.zeros(1, 4, TINY.dim)}, TINY)
    with pytest.raises(FairbenchError, match=r"pos_embed has shape \(1, 257, 32\), the published layout \(1, 1370, 32\)"):
        D.vit_from_state_dict({**state, "pos_embed": torch.zeros(1, 257, TINY.dim)}, TINY)
    with pytest.raises(FairbenchError, match="missing cls_token, pos_embed, mask_token, ... "):
        D.vit_from_state_dict({"teacher": state}, TINY)  # a training checkpoint, not the backbone
    with pytest.raises(FairbenchError, match="not a DINOv2 state dict"):
        D.vit_from_state_dict([1, 2], TINY)
    # ViT-S/14 keys are not ViT-B/14's: a file for the wrong variant says so
    small = {k: torch.empty(s) for k, s in D.published_layout(D.VARIANTS["dinov2-vits14"]).items()}
    with pytest.raises(FairbenchError, match=r"cls_token has shape \(1, 1, 384\), the published layout \(1, 1, 768\)"):
        D.vit_from_state_dict(small, D.VARIANTS["dinov2-vitb14"])


# --------------------------------------------------------------------------------------- the forward pass


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-6) * w + b


def _np_attention(x: np.ndarray, s: dict[str, np.ndarray], prefix: str, heads: int) -> np.ndarray:
    n, d = x.shape
    qkv = (x @ s[f"{prefix}qkv.weight"].T + s[f"{prefix}qkv.bias"]).reshape(n, 3, heads, d // heads)
    q, k, v = (qkv[:, i].transpose(1, 0, 2) for i in range(3))  # heads x n x head_dim
    logits = q @ k.transpose(0, 2, 1) / np.sqrt(d // heads)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = (weights @ v).transpose(1, 0, 2).reshape(n, d)
    return out @ s[f"{prefix}proj.weight"].T + s[f"{prefix}proj.bias"]


def _cubic_weights(t: float, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution (a = -0.75, as torch's bicubic) for the 4 taps around a sample point."""
    def k(x: float) -> float:
        x = abs(x)
        return ((a + 2) * x - (a + 3)) * x * x + 1 if x <= 1 else ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.array([k(t + 1), k(t), k(1 - t), k(2 - t)])


def _np_bicubic_axis(x: np.ndarray, out: int, scale: float, axis: int) -> np.ndarray:
    """Resample `x` along `axis` to `out` samples at source positions (o + 0.5) / scale - 0.5 (torch's rule
    when a scale factor is given, align_corners False), edge taps clamped."""
    x = np.moveaxis(x, axis, 0)
    n = x.shape[0]
    rows = []
    for o in range(out):
        src = (o + 0.5) / scale - 0.5
        i0 = int(np.floor(src))
        taps = [min(max(i0 + j, 0), n - 1) for j in (-1, 0, 1, 2)]
        rows.append(np.tensordot(_cubic_weights(src - i0), x[taps], axes=1))
    return np.moveaxis(np.stack(rows), 0, axis)


def _np_position_embeddings(pos: np.ndarray, grid: int, offset: float = 0.1) -> np.ndarray:
    m = int(round(np.sqrt(pos.shape[0] - 1)))
    patches = pos[1:].reshape(m, m, -1)
    scale = (grid + offset) / m
    patches = _np_bicubic_axis(_np_bicubic_axis(patches, grid, scale, 0), grid, scale, 1)
    return np.concatenate([pos[:1], patches.reshape(grid * grid, -1)])


def _np_forward(x: np.ndarray, s: dict[str, np.ndarray], cfg: D.VitConfig) -> np.ndarray:
    """One preprocessed 3 x H x W image -> the normed [CLS] token, in float64, from the published recipe."""
    p, d = cfg.patch, cfg.dim
    gh, gw = x.shape[1] // p, x.shape[2] // p
    patches = x.reshape(3, gh, p, gw, p).transpose(1, 3, 0, 2, 4).reshape(gh * gw, 3 * p * p)  # row-major
    tokens = patches @ s["patch_embed.proj.weight"].reshape(d, -1).T + s["patch_embed.proj.bias"]
    tokens = np.concatenate([s["cls_token"][0], tokens]) + _np_position_embeddings(s["pos_embed"][0], gh)
    for i in range(cfg.depth):
        b = f"blocks.{i}."
        h = _layer_norm(tokens, s[b + "norm1.weight"], s[b + "norm1.bias"])
        tokens = tokens + s[b + "ls1.gamma"] * _np_attention(h, s, b + "attn.", cfg.heads)
        h = _layer_norm(tokens, s[b + "norm2.weight"], s[b + "norm2.bias"])
        h = h @ s[b + "mlp.fc1.weight"].T + s[b + "mlp.fc1.bias"]
        h = 0.5 * h * (1 + erf(h / np.sqrt(2)))  # exact GELU
        tokens = tokens + s[b + "ls2.gamma"] * (h @ s[b + "mlp.fc2.weight"].T + s[b + "mlp.fc2.bias"])
    return _layer_norm(tokens, s["norm.weight"], s["norm.bias"])[0]


def _dgm_eval_inputs(images: torch.Tensor) -> torch.Tensor:
    """dgm-eval's DINOv2 transform on its loader's `Image.open(path).convert("RGB")`, written out here."""
    prep = T.Compose([
        T.Resize((224, 224), T.InterpolationMode.BICUBIC), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    arrays = images.permute(0, 2, 3, 1).numpy()
    mode = "L" if images.shape[1] == 1 else "RGB"
    return torch.stack([
        prep(Image.fromarray(np.ascontiguousarray(a.squeeze(-1) if mode == "L" else a), mode).convert("RGB"))
        for a in arrays
    ])


def test_features_are_the_published_recipe_computed_independently(tiny) -> None:
    net, state = tiny
    s = {k: v.double().numpy() for k, v in state.items()}
    for images in (_images(3), _images(2, h=20, w=44, seed=1)):  # square; and stretched to 224x224, no crop
        out = net.extract(images, batch_size=2, device="cpu")
        assert out.shape == (len(images), TINY.dim) and out.dtype == np.float64
        expected = np.stack([_np_forward(x, s, TINY) for x in _dgm_eval_inputs(images).double().numpy()])
        np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)  # float32 against float64 (~1e-6 measured)
        centred, centred_expected = out - out.mean(0), expected - expected.mean(0)
        assert np.abs(centred_expected).max() > 0.05  # the features do vary with the image
        np.testing.assert_allclose(centred, centred_expected, rtol=0, atol=1e-5)


def test_attention_block_against_plain_numpy(tiny) -> None:
    net, state = tiny
    x = torch.randn(2, 7, TINY.dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = net.vit.blocks[0].attn(x).double().numpy()
    s = {k: v.double().numpy() for k, v in state.items()}
    for i in range(2):
        np.testing.assert_allclose(got[i], _np_attention(x[i].double().numpy(), s, "blocks.0.attn.", TINY.heads),
                                   rtol=0, atol=1e-5)


def test_position_embeddings_are_resized_as_the_official_code_does(tiny) -> None:
    net, state = tiny
    pos = state["pos_embed"][0].double().numpy()
    with torch.no_grad():
        got = net.vit.position_embeddings(16, 16)[0].double().numpy()  # 224 px
        assert torch.equal(net.vit.position_embeddings(37, 37), net.vit.pos_embed)  # the trained grid, untouched
    np.testing.assert_allclose(got, _np_position_embeddings(pos, 16), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(got[0], pos[0])  # the [CLS] embedding is never resampled
    # The 0.1 offset moves the sampling positions: a plain resize to 16x16 is measurably different
    assert np.abs(got - _np_position_embeddings(pos, 16, offset=0.0)).max() > 1e-3


def test_dgm_eval_preprocessing_and_grey_images(tiny) -> None:
    net = tiny[0]
    for images in (_images(2, h=8, w=8, seed=3), _images(2, c=1, h=28, w=28, seed=5), _images(1, h=300, w=260)):
        prepared = D.dinov2_inputs(images)
        assert prepared.shape == (len(images), 3, 224, 224) and prepared.dtype == torch.float32
        torch.testing.assert_close(prepared, _dgm_eval_inputs(images), rtol=0, atol=1e-6)
    grey = _images(2, c=1, seed=6)
    np.testing.assert_array_equal(net.extract(grey, 2, "cpu"), net.extract(grey.repeat(1, 3, 1, 1), 2, "cpu"))
    assert "224x224" in net.resize_rule and "bicubic" in net.resize_rule and "0.485" in net.resize_rule
    with pytest.raises(FairbenchError, match="1- or 3-channel"):
        net.extract(_images(1, c=2), 1, "cpu")
    with pytest.raises(FairbenchError, match="uint8"):
        net.extract(_images(1).float(), 1, "cpu")


def test_fixed_chunks_batch_size_and_n_never_change_a_feature(tiny, monkeypatch) -> None:
    net = tiny[0]
    images = _images(2 * D.DINOV2_CHUNK + 6, seed=7)  # three chunks, the last one short
    calls: list[int] = []
    prepared: list[int] = []
    forward, inputs = type(net.vit).forward, D.dinov2_inputs
    monkeypatch.setattr(type(net.vit), "forward", lambda self, x: (calls.append(len(x)), forward(self, x))[1])
    monkeypatch.setattr(D, "dinov2_inputs", lambda x: (prepared.append(len(x)), inputs(x))[1])
    whole = net.extract(images, 250, "cpu")
    # Memory is flat in N: at most one chunk of images is prepared and run at a time, and every call has one size
    assert calls == [D.DINOV2_CHUNK] * 3 and max(prepared) <= D.DINOV2_CHUNK and sum(prepared) == len(images)
    for batch_size in (1, 7, 10_000):
        np.testing.assert_array_equal(net.extract(images, batch_size, "cpu"), whole)
    np.testing.assert_array_equal(net.extract(images[:3], 3, "cpu"), whole[:3])  # nor does the number of images
    assert net.extract(images[:0], 4, "cpu").shape == (0, TINY.dim)
    with pytest.raises(FairbenchError, match="batch size must be positive"):
        net.extract(images[:1], 0, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_features(tiny) -> None:
    net = tiny[0]
    images = _images(5, seed=8)
    cpu = net.extract(images, 5, "cpu")
    allow_tf32 = torch.backends.cuda.matmul.allow_tf32
    cuda = net.extract(images, 5, "cuda")
    net.vit.to("cpu")
    assert torch.backends.cuda.matmul.allow_tf32 == allow_tf32  # restored after extraction
    np.testing.assert_allclose(cuda, cpu, rtol=0, atol=1e-4)


# --------------------------------------------------------------------------------------- weights and selection


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tofu_manifest(folder: Path, mp: pytest.MonkeyPatch, *asset_ids: str) -> None:
    """The shipped entries for `asset_ids` (trust on first use, no sha256), as the only ones in a test manifest."""
    shipped = assets.load_manifest(Path(D.__file__).resolve().parent.parent / "assets" / "manifest.yaml")
    entries = []
    for asset_id in asset_ids:
        a = shipped[asset_id]
        assert a.verify == "trust-on-first-use" and a.sha256 is None and "no public" in a.source.lower()
        entries.append({
            "id": a.id, "path": a.path, "url": a.url, "verify": a.verify, "sha256": None, "licence": a.licence,
            "description": a.description, "used_by": a.used_by, "source": a.source,
        })
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "assets": entries}))
    mp.setenv(assets.MANIFEST_ENV, str(path))


def _place(weights: Path, asset_id: str) -> Path:
    target = assets.asset_path(asset_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(weights, target)
    except OSError:
        shutil.copy(weights, target)
    return target


@pytest.fixture(scope="module")
def vits_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A real-size ViT-S/14 state dict (22 M random parameters) saved as Meta's files are: torch.save of a dict."""
    state = _random_state(D.VARIANTS["dinov2-vits14"], seed=1)
    path = tmp_path_factory.mktemp("dinov2") / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    return path, state


def test_a_real_size_file_is_pinned_on_first_use_and_loads_strictly(vits_file, tmp_path, monkeypatch) -> None:
    weights, state = vits_file
    _tofu_manifest(tmp_path, monkeypatch, "dinov2-vits14")
    target = _place(weights, "dinov2-vits14")
    task = get_task("digits-bicolor")
    ref = select_feature_network(task, "dinov2-vits14", "cpu")  # first use: the placed copy is pinned
    assert ref == FeatureRef("dinov2-vits14", _sha(weights))
    assert assets.status("dinov2-vits14").state is assets.AssetState.VERIFIED
    assert with_feature_network(task, "dinov2-vits14").quality.feature_network == ref

    loads: list[dict] = []
    real_load = torch.load

    def spy(*args, **kwargs):
        loads.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    monkeypatch.setattr(pickle, "Unpickler", None)  # the standard unpickler is never reached
    net = load_feature_network("dinov2-vits14", ref.sha256)
    assert [k.get("weights_only") for k in loads] == [True]
    assert (net.id, net.sha256, net.dim) == ("dinov2-vits14", ref.sha256, 384)
    loaded = net.vit.state_dict()
    assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
    with torch.no_grad():
        cls = net.vit(D.dinov2_inputs(_images(2, seed=9)))
    assert cls.shape == (2, 384) and torch.isfinite(cls).all()

    # Another file in its place afterwards contradicts the pin: refused, never scored with
    target.unlink()
    torch.save({**state, "norm.bias": state["norm.bias"] + 1}, target)
    with pytest.raises(FairbenchError, match="dinov2_vits14_pretrain.pth has sha256 .* expected"):
        load_feature_network("dinov2-vits14", ref.sha256)


def test_a_file_holding_python_objects_is_refused(tmp_path, monkeypatch) -> None:
    _tofu_manifest(tmp_path, monkeypatch, "dinov2-vits14")
    target = assets.asset_path("dinov2-vits14")
    target.parent.mkdir(parents=True)
    torch.save({"cls_token": torch.zeros(1), "meta": Path("x")}, target)  # a pickled object beside a tensor
    ref = select_feature_network(get_task("digits-bicolor"), "dinov2-vits14", "cpu")
    with pytest.raises(FairbenchError, match="refused: the file holds Python objects, not plain weights"):
        load_feature_network("dinov2-vits14", ref.sha256)


def test_dinov2_is_vitl14_under_one_name(tmp_path, monkeypatch) -> None:
    # ViT-L/14 at full size is 1.2 GB: the alias is checked with the tiny config standing in for it
    monkeypatch.setitem(D.VARIANTS, "dinov2-vitl14", TINY)
    weights = tmp_path / "dinov2_vitl14_pretrain.pth"
    torch.save(_random_state(TINY, seed=2), weights)
    _tofu_manifest(tmp_path, monkeypatch, "dinov2-vitl14")
    _place(weights, "dinov2-vitl14")
    task = get_task("digits-bicolor")
    ref = select_feature_network(task, "dinov2", "cpu")
    assert ref == FeatureRef("dinov2", _sha(weights))
    assert select_feature_network(task, "dinov2-vitl14", "cpu").sha256 == ref.sha256
    net = load_feature_network("dinov2", ref.sha256)
    assert (net.id, net.sha256) == ("dinov2-vitl14", ref.sha256)  # results and boards see one network
    assert {"dinov2", "dinov2-vits14", "dinov2-vitb14", "dinov2-vitl14"} <= set(FEATURE_NETWORKS.names())


def test_offline_without_the_file_is_one_line_saying_where_and_how(monkeypatch) -> None:
    monkeypatch.delenv(assets.MANIFEST_ENV, raising=False)  # the shipped manifest
    with pytest.raises(FairbenchError) as caught:
        with_feature_network(get_task("digits-bicolor"), "dinov2")
    message = str(caught.value)
    assert "\n" not in message
    assert "dinov2_vitl14_pretrain.pth" in message and str(assets.asset_path("dinov2-vitl14")) in message
    assert "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth" in message
    assert "FAIRBENCH_OFFLINE=1" in message
    assert "`fairbench assets list`" in message and "`fairbench assets fetch dinov2-vitl14`" in message
    assert not assets.asset_path("dinov2-vitl14").exists()  # nothing half-written
