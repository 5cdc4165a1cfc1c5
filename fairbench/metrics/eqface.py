"""EQ-Face: a face-specific no-reference quality score, from the user's own copy of the authors' weights.

EQFace (Liu et al., "EQFace: A Simple Explicit Quality Network for Face Recognition", CVPRW 2021; code at
deepcam-cn/FaceQuality, MIT) attaches a small quality head to an IR-ResNet face-recognition backbone trained on
MS1Mv2. The head reads the backbone's flattened last feature map (C x 7 x 7 for a 112 x 112 face) and its
softmax's first output is the quality, in [0, 1], higher is better. Natural-image IQA (NIQE, BRISQUE) judges
texture statistics; EQ-Face judges whether a face is recognisable, which is what a face generator's fairness
study needs per group.

Weights: `backbone.pth` and `quality.pth` from the authors' Google Drive folder (no stable URL, no published
hash), placed by the user at the paths the asset manifest names (`eqface-backbone`, `eqface-quality`). Both are
`torch.save(state_dict)` files, often of an `nn.DataParallel` wrapper (keys prefixed `module.`); they are read
with `weights_only=True`, so a file carrying code is refused, never run. The architecture is not assumed: stage
widths, block counts and the head's size are read from the tensors' shapes (the authors' release is IR-100,
widths 64/64/128/256/512), so a file of another depth loads too and a mismatched file fails with the keys
named. The state-dict layout (module names, including the authors' `qualtiy` spelling) is the file format
and is kept exactly.

Input protocol (the authors' `test_quality.py`): RGB, resized to 112 x 112 with bilinear interpolation on
the 8-bit image (OpenCV's INTER_LINEAR: half-pixel centres, no antialiasing, result rounded to uint8), then
`(x - 127.5) / 128`. Grey images are replicated to three channels. EQFace was trained on faces aligned to
112 x 112 crops by five landmarks; fairbench scores the whole image, so a face task's images should be face
crops (UTKFace's aligned crops, FFHQ-style aligned faces); the rule is fixed for every method, so it never
favours one.

Determinism: images always pass through the network in batches of exactly `EQFACE_BATCH` (the last one padded
with black images whose scores are dropped), so an image's score never depends on the caller's batch size or
on how many images are scored with it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fairbench.errors import FairbenchError
from fairbench.metrics.image_input import as_uint8_nchw

INPUT_SIZE = 112  # the face crop size the backbone was trained on; 4 stride-2 stages leave 7 x 7
FEATURE_SIDE = INPUT_SIZE // 16
EQFACE_BATCH = 16
BACKBONE_ASSET = "eqface-backbone"
QUALITY_ASSET = "eqface-quality"


# --------------------------------------------------------------------------------------------- architecture


@dataclass(frozen=True)
class IRResNetShape:
    """What the weight files say about the network: widths, blocks per stage, head sizes."""

    stem_width: int
    stage_widths: tuple[int, int, int, int]
    stage_blocks: tuple[int, int, int, int]
    embedding_dim: int
    quality_hidden: int

    @property
    def depth(self) -> int:
        """The name the literature uses: two convolutions per block plus stem and embedding (IR-50, IR-100)."""
        return 2 * sum(self.stage_blocks) + 2

    @property
    def flat_dim(self) -> int:
        return self.stage_widths[-1] * FEATURE_SIDE * FEATURE_SIDE


IR100 = IRResNetShape(64, (64, 128, 256, 512), (3, 13, 30, 3), 512, 512)


class _IRBlock(nn.Module):
    """Improved residual unit (BN, conv, BN, PReLU, conv, BN) + identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.PReLU(cout),
            nn.Conv2d(cout, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        projects = stride != 1 or cin != cout
        self.shortcut_layer = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) if projects else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.shortcut_layer is None else self.shortcut_layer(x)
        return shortcut + self.res_layer(x)


class EQFaceNet(nn.Module):
    """Backbone + quality head; `forward` maps preprocessed 112 x 112 faces to quality in [0, 1]."""

    def __init__(self, shape: IRResNetShape = IR100) -> None:
        super().__init__()
        self.shape = shape
        stem = shape.stem_width
        self.input_layer = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem))
        cin = stem
        for k, (width, blocks) in enumerate(zip(shape.stage_widths, shape.stage_blocks), start=1):
            # every stage halves the resolution in its first block, which therefore always projects
            stage = [_IRBlock(cin, width, 2)] + [_IRBlock(width, width, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{k}", nn.Sequential(*stage))
            cin = width
        self.output_layer = nn.Sequential(nn.BatchNorm2d(cin), nn.Dropout(), nn.Flatten())
        # the embedding the recognition loss trained; kept so the backbone file loads whole, unused for quality
        self.feature_layer = nn.Sequential(nn.Linear(shape.flat_dim, shape.embedding_dim), nn.BatchNorm1d(shape.embedding_dim))
        self.qualtiy = nn.Sequential(
            nn.Linear(shape.flat_dim, shape.quality_hidden, bias=False),
            nn.BatchNorm1d(shape.quality_hidden),
            nn.ReLU(),
            nn.Linear(shape.quality_hidden, 2, bias=False),
            nn.Softmax(dim=1),
        )

    def flat_features(self, x: torch.Tensor) -> torch.Tensor:
        """The flattened last feature map the quality head reads (the authors' `fc`)."""
        x = self.input_layer(x)
        for k in range(1, 5):
            x = getattr(self, f"layer{k}")(x)
        return self.output_layer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.qualtiy(self.flat_features(x))[:, 0]


BACKBONE_PREFIXES = ("input_layer.", "layer1.", "layer2.", "layer3.", "layer4.", "output_layer.", "feature_layer.")
QUALITY_PREFIX = "qualtiy."


# --------------------------------------------------------------------------------------------- weight files


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """A `torch.save(state_dict)` file as {name: tensor}, `module.` prefixes removed; never unpickles code."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FairbenchError(f"{path}: no such file ({what})") from None
    except Exception as exc:  # noqa: BLE001 - pickles with code, truncated or foreign files
        raise FairbenchError(f"{path}: not a loadable {what} state dict ({type(exc).__name__}: {_short(exc)})") from None
    if isinstance(data, Mapping) and isinstance(data.get("state_dict"), Mapping):
        data = data["state_dict"]  # a training checkpoint wrapping the state dict
    if not isinstance(data, Mapping) or not data:
        raise FairbenchError(f"{path}: expected the {what} state dict (names -> tensors), got {type(data).__name__}")
    out: dict[str, torch.Tensor] = {}
    for key, value in data.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise FairbenchError(f"{path}: {what} entry {key!r} is not a named tensor")
        out[key.removeprefix("module.")] = value
    return out


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


_BLOCK_KEY = re.compile(r"layer([1-4])\.(\d+)\.")


def infer_shape(backbone: Mapping[str, torch.Tensor], quality: Mapping[str, torch.Tensor]) -> IRResNetShape:
    """Read widths and block counts from the tensors, so any IR-ResNet depth of this layout loads."""

    def tensor(state: Mapping[str, torch.Tensor], key: str, ndim: int, where: str) -> torch.Tensor:
        value = state.get(key)
        if value is None or value.ndim != ndim:
            raise FairbenchError(f"{where} lacks {key!r} (a {ndim}-d tensor): not an EQFace file of this layout")
        return value

    indices: list[set[int]] = [set(), set(), set(), set()]
    for key in backbone:
        match = _BLOCK_KEY.match(key)
        if match:
            indices[int(match.group(1)) - 1].add(int(match.group(2)))
    blocks = [len(found) for found in indices]
    for k, found in enumerate(indices, start=1):
        # numbered 0..n-1 without gaps; a stray huge index must not make us build a huge network
        if not found or found != set(range(len(found))):
            raise FairbenchError(f"EQ-Face backbone: stage layer{k} blocks are not numbered 0..n-1; not an EQFace backbone")
    widths = tuple(int(tensor(backbone, f"layer{k}.0.res_layer.1.weight", 4, "EQ-Face backbone").shape[0]) for k in range(1, 5))
    stem = int(tensor(backbone, "input_layer.0.weight", 4, "EQ-Face backbone").shape[0])
    embedding = int(tensor(backbone, "feature_layer.0.weight", 2, "EQ-Face backbone").shape[0])
    hidden = int(tensor(quality, "qualtiy.0.weight", 2, "EQ-Face quality head").shape[0])
    return IRResNetShape(stem, widths, tuple(blocks), embedding, hidden)  # type: ignore[arg-type]


def load_eqface(backbone_path: Path, quality_path: Path, device: str | torch.device = "cpu") -> EQFaceNet:
    """The network in eval mode with both files loaded strictly (every tensor used, every shape checked)."""
    backbone = read_state_dict(Path(backbone_path), "EQ-Face backbone")
    quality = read_state_dict(Path(quality_path), "EQ-Face quality head")
    stray = sorted(k for k in backbone if not k.startswith(BACKBONE_PREFIXES))
    if stray:
        raise FairbenchError(f"{backbone_path}: unexpected keys {_listing(stray)}: not an EQFace backbone")
    stray = sorted(k for k in quality if not k.startswith(QUALITY_PREFIX))
    if stray:
        hint = " (the backbone file given as the quality head?)" if any(k.startswith("layer1.") for k in stray) else ""
        raise FairbenchError(f"{quality_path}: unexpected keys {_listing(stray)}{hint}: not an EQFace quality head")
    shape = infer_shape(backbone, quality)
    with torch.device("meta"):
        net = EQFaceNet(shape)
    expected = net.state_dict()
    state = {**backbone, **quality}
    # num_batches_tracked only counts training steps; files saved without it are fine
    missing = sorted(k for k in expected if k not in state and not k.endswith("num_batches_tracked"))
    unexpected = sorted(k for k in state if k not in expected)
    wrong = sorted(k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{label} {_listing(keys)}" for label, keys in (("missing", missing), ("unexpected", unexpected),
                 ("wrong shape", wrong)) if keys]
        raise FairbenchError(f"EQ-Face weights ({backbone_path}, {quality_path}) do not fit IR-{shape.depth}: "
                             + "; ".join(parts))
    for key, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise FairbenchError(f"EQ-Face weights: {key!r} holds NaN or Inf values")
    net = net.to_empty(device="cpu")
    net.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=False, assign=False)
    for key, buf in net.named_buffers():
        if key.endswith("num_batches_tracked") and key not in state:
            buf.zero_()
    return net.eval().to(device)


def _listing(keys: list[str], limit: int = 4) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# --------------------------------------------------------------------------------------------- scoring


def preprocess(images_uint8_nchw: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W (C = 1 or 3, RGB) -> float32 N x 3 x 112 x 112 as the authors feed it (module doc)."""
    x = images_uint8_nchw.to(torch.float32)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=False)
        x = torch.round(x).clamp_(0.0, 255.0)  # OpenCV resizes an 8-bit image into an 8-bit image
    return ((x - 127.5) / 128.0).contiguous()


def score_faces(
    net: EQFaceNet,
    images_uint8_nchw: torch.Tensor,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Per-image EQ-Face quality (float64), in fixed padded batches of EQFACE_BATCH (module doc)."""
    n = images_uint8_nchw.shape[0]
    scores = np.empty(n, dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, n, EQFACE_BATCH):
            stop = min(start + EQFACE_BATCH, n)
            batch = preprocess(images_uint8_nchw[start:stop])
            if stop - start < EQFACE_BATCH:
                pad = batch.new_full((EQFACE_BATCH - (stop - start), *batch.shape[1:]), -127.5 / 128.0)
                batch = torch.cat([batch, pad])
            out = net(batch.to(device)).to("cpu", torch.float64).numpy()
            scores[start:stop] = out[: stop - start]
            if progress is not None:
                progress(stop, n)
    scores[~np.isfinite(scores)] = np.nan
    return scores


@dataclass(frozen=True)
class EQFaceMetric:
    """The `eqface` entry of the IQA registry: same interface as the pyiqa metrics."""

    name: str = "eqface"
    higher_is_better: bool = True
    assets: tuple[str, ...] = (BACKBONE_ASSET, QUALITY_ASSET)
    description: str = "EQ-Face (Liu et al. 2021) face quality from user-supplied weights; in [0, 1], higher is better"

    def package_problem(self) -> str | None:
        return None  # torch only

    def compute(
        self,
        images_uint8_nchw: Any,
        batch_size: int = EQFACE_BATCH,
        device: str | torch.device = "cpu",
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Per-image scores; `batch_size` is accepted for the common interface and ignored (module doc)."""
        from fairbench import assets as asset_store

        images = as_uint8_nchw(images_uint8_nchw)
        if batch_size < 1:
            raise FairbenchError(f"batch_size must be positive, got {batch_size}")
        net = load_eqface(asset_store.require(BACKBONE_ASSET), asset_store.require(QUALITY_ASSET), device)
        return score_faces(net, images, device, progress)
