"""`dinov2`: the FID family on DINOv2 embeddings (Stein et al. 2023: Fréchet distance in DINOv2 ViT-L/14 space
follows human judgements of realism where Inception's does not; dgm-eval's default network).

What is computed, exactly:
- Network: Meta's DINOv2 ViT-S/14, ViT-B/14 or ViT-L/14 backbone (`dinov2-vits14`, `dinov2-vitb14`,
  `dinov2-vitl14`; `dinov2` is ViT-L/14, dgm-eval's default, and records itself as `dinov2-vitl14` so that one
  network never appears under two names), implemented here with the official parameter names: patch size 14,
  a [CLS] token, no register tokens, pre-norm blocks (LayerNorm eps 1e-6, multi-head attention with qkv and
  projection biases, layer scale `ls1`/`ls2`, MLP 4x wide with exact GELU), a final LayerNorm. The feature is
  the [CLS] token after that final norm (the hub model's `forward`, `x_norm_clstoken`): 384, 768 or 1024-d.
- Position embeddings were trained for 518x518 inputs (a 37x37 grid). For any other grid they are resized
  as the official `interpolate_pos_encoding` does: bicubic (`F.interpolate`, align_corners False, no
  antialias) with scale factor (grid + 0.1) / 37 -- the 0.1 is the official offset, which changes the
  sampling positions, not only the size. At 224 px the grid is 16x16.
- Weights: the released `dinov2_vit{s,b,l}14_pretrain.pth` (assets `dinov2-vits14`, ...), read with
  `torch.load(weights_only=True)` as a flat state dict; every published key must be present with its
  published shape and nothing else may be (the error names the key). No public sha256 was found for these
  files, so the asset manifest trusts the first copy and pins its sha256; every result records it.
- Preprocessing as dgm-eval's DINOv2 encoder: each image as a PIL RGB image (grey replicated, as its loader's
  `convert("RGB")`), resized to 224x224 by PIL bicubic (aspect ratio not kept, no crop; uint8 as PIL gives
  it), to [0, 1], normalised by the ImageNet mean and std.
- Determinism: the network always runs on chunks of `DINOV2_CHUNK` images, the last padded with blank
  inputs, in float32 with TF32 off on CUDA; every call has one shape, so neither the batch size a caller asks
  for nor the number of images changes a feature (bit for bit on the CPU, tested), and memory stays flat in
  N (one chunk of inputs at a time).

ViT-L/14 costs about 80 billion multiply-adds per image at 224 px: fast on a GPU, slow on a few CPU cores, so
it is opt-in (`fairbench score --feature-network dinov2`, or a task's `quality.gpu_feature_network`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fairbench.chunking import chunk_slices
from fairbench.errors import FairbenchError
from fairbench.features.base import FEATURE_NETWORKS, FeatureNetwork, check_batch_size, check_images, pinned_asset

DINOV2_DEFAULT = "dinov2"  # the id users type; it is ViT-L/14, as in dgm-eval
DINOV2_PATCH = 14
DINOV2_TRAINED_GRID = 37  # 518 px / 14: the grid the released position embeddings were trained for
DINOV2_POS_OFFSET = 0.1  # the official interpolate_offset
DINOV2_SIZE = 224  # dgm-eval's input size
DINOV2_CHUNK = 32  # images per network call, always (the last chunk padded)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYER_NORM_EPS = 1e-6


@dataclass(frozen=True)
class VitConfig:
    """A DINOv2 backbone's shape; the released ones differ only in width, depth and heads."""

    dim: int
    depth: int
    heads: int
    mlp_ratio: int = 4
    patch: int = DINOV2_PATCH
    trained_grid: int = DINOV2_TRAINED_GRID


VARIANTS: dict[str, VitConfig] = {
    "dinov2-vits14": VitConfig(dim=384, depth=12, heads=6),
    "dinov2-vitb14": VitConfig(dim=768, depth=12, heads=12),
    "dinov2-vitl14": VitConfig(dim=1024, depth=24, heads=16),
}
ALIASES = {DINOV2_DEFAULT: "dinov2-vitl14"}
# Network id -> the asset (manifest id) holding its weights: what `--feature-network` can name by id alone.
DINOV2_ASSETS: dict[str, str] = {**{v: v for v in VARIANTS}, **ALIASES}

DINOV2_RESIZE_RULE = (
    f"dgm-eval DINOv2: per image as PIL RGB (grey replicated), resized to {DINOV2_SIZE}x{DINOV2_SIZE} by PIL "
    f"bicubic (uint8, aspect not kept, no crop), /255, normalised by ImageNet mean {list(IMAGENET_MEAN)} std "
    f"{list(IMAGENET_STD)}; float32"
)


# --------------------------------------------------------------------------------------- the network


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / sqrt(head dim)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU, nn.GELU's default


class _Block(nn.Module):
    def __init__(self, cfg: VitConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.dim, eps=LAYER_NORM_EPS)
        self.attn = _Attention(cfg.dim, cfg.heads)
        self.ls1 = _LayerScale(cfg.dim)
        self.norm2 = nn.LayerNorm(cfg.dim, eps=LAYER_NORM_EPS)
        self.mlp = _Mlp(cfg.dim, cfg.mlp_ratio * cfg.dim)
        self.ls2 = _LayerScale(cfg.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _PatchEmbed(nn.Module):
    def __init__(self, cfg: VitConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.dim, kernel_size=cfg.patch, stride=cfg.patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # B x (H/14 * W/14) x D, row-major patches


class DinoV2ViT(nn.Module):
    """DINOv2's backbone with the released checkpoints' parameter names; `forward` gives the normed [CLS] token.
    `mask_token` is only used in training, but it is in the released files, so it is a parameter here."""

    def __init__(self, cfg: VitConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.trained_grid**2, cfg.dim))
        self.mask_token = nn.Parameter(torch.zeros(1, cfg.dim))
        self.patch_embed = _PatchEmbed(cfg)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim, eps=LAYER_NORM_EPS)

    def position_embeddings(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """[CLS] + patch position embeddings for a grid_h x grid_w patch grid (official interpolation)."""
        m = self.cfg.trained_grid
        if (grid_h, grid_w) == (m, m):  # the official code leaves the trained grid untouched
            return self.pos_embed
        cls, patches = self.pos_embed[:, :1], self.pos_embed[:, 1:]
        grid = patches.float().reshape(1, m, m, -1).permute(0, 3, 1, 2)
        scale = ((grid_h + DINOV2_POS_OFFSET) / m, (grid_w + DINOV2_POS_OFFSET) / m)
        grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False, antialias=False)
        if tuple(grid.shape[-2:]) != (grid_h, grid_w):
            got = "x".join(map(str, grid.shape[-2:]))
            raise FairbenchError(f"dinov2: position embeddings resized to {got}, not {grid_h}x{grid_w}")
        patches = grid.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1).to(self.pos_embed.dtype)
        return torch.cat([cls, patches], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.cfg.patch
        if x.shape[-2] % p or x.shape[-1] % p:
            raise FairbenchError(f"dinov2 takes images whose sides are multiples of {p}, got {tuple(x.shape[-2:])}")
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1), tokens], dim=1)
        tokens = tokens + self.position_embeddings(x.shape[-2] // p, x.shape[-1] // p)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]


def published_layout(cfg: VitConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of a released `dinov2_vit*14_pretrain.pth` and its shape, written out from the published
    architecture (not read from a model), so a file or a model that differs is caught."""
    d, h = cfg.dim, cfg.mlp_ratio * cfg.dim
    layout: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, 1 + cfg.trained_grid**2, d),
        "mask_token": (1, d),
        "patch_embed.proj.weight": (d, 3, cfg.patch, cfg.patch),
        "patch_embed.proj.bias": (d,),
    }
    for i in range(cfg.depth):
        for name, shape in (
            ("norm1.weight", (d,)), ("norm1.bias", (d,)),
            ("attn.qkv.weight", (3 * d, d)), ("attn.qkv.bias", (3 * d,)),
            ("attn.proj.weight", (d, d)), ("attn.proj.bias", (d,)),
            ("ls1.gamma", (d,)),
            ("norm2.weight", (d,)), ("norm2.bias", (d,)),
            ("mlp.fc1.weight", (h, d)), ("mlp.fc1.bias", (h,)),
            ("mlp.fc2.weight", (d, h)), ("mlp.fc2.bias", (d,)),
            ("ls2.gamma", (d,)),
        ):
            layout[f"blocks.{i}.{name}"] = shape
    layout["norm.weight"] = (d,)
    layout["norm.bias"] = (d,)
    return layout


def _named(keys: list[str], limit: int = 3) -> str:
    return ", ".join(keys[:limit]) + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def vit_from_state_dict(state: object, cfg: VitConfig, where: str = "dinov2 weights") -> DinoV2ViT:
    """The backbone holding exactly these tensors, in float32. Anything but the published key set with the
    published shapes is refused, naming the key: a lenient load would score with partly random weights."""
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise FairbenchError(f"{where}: not a DINOv2 state dict (a mapping of parameter names to tensors)")
    layout = published_layout(cfg)
    missing = [k for k in layout if k not in state]
    extra = sorted(k for k in state if k not in layout)
    if missing or extra:
        parts = [f"missing {_named(missing)}"] if missing else []
        parts += [f"unexpected {_named(extra)}"] if extra else []
        raise FairbenchError(
            f"{where}: not the published DINOv2 layout (dim {cfg.dim}, depth {cfg.depth}): {'; '.join(parts)}"
        )
    for key, shape in layout.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise FairbenchError(f"{where}: {key} is not a floating-point tensor")
        if tuple(value.shape) != shape:
            raise FairbenchError(f"{where}: {key} has shape {tuple(value.shape)}, the published layout {shape}")
    with torch.device("meta"):  # no memory and no random init: the file's tensors become the parameters
        vit = DinoV2ViT(cfg)
    vit.load_state_dict({k: state[k].detach().float() for k in layout}, strict=True, assign=True)
    return vit.eval().requires_grad_(False)


# --------------------------------------------------------------------------------------- inputs and features


def dinov2_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W (C = 1 or 3) -> float32 N x 3 x 224 x 224: what the network is given (module doc)."""
    from PIL import Image

    check_images(images, "dinov2")
    c = images.shape[1]
    if c not in (1, 3):
        raise FairbenchError(f"dinov2 takes 1- or 3-channel images, got {c} channels")
    out = np.empty((len(images), DINOV2_SIZE, DINOV2_SIZE, 3), dtype=np.float32)
    for i, a in enumerate(images.permute(0, 2, 3, 1).numpy()):
        pic = Image.fromarray(np.ascontiguousarray(a[:, :, 0]), "L").convert("RGB") if c == 1 else Image.fromarray(
            np.ascontiguousarray(a), "RGB"
        )
        out[i] = np.asarray(pic.resize((DINOV2_SIZE, DINOV2_SIZE), Image.Resampling.BICUBIC), dtype=np.float32)
    x = torch.from_numpy(out).permute(0, 3, 1, 2) / 255.0
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)[:, None, None]
    return ((x - mean) / std).contiguous()


class DinoV2Network(FeatureNetwork):
    """A DINOv2 backbone fed by dgm-eval's preprocessing, over fixed chunks (module doc)."""

    def __init__(self, network_id: str, vit: DinoV2ViT, sha256: str) -> None:
        self.vit = vit.float().eval()
        self.id = network_id
        self.sha256 = sha256
        self.dim = vit.cfg.dim
        self.resize_rule = DINOV2_RESIZE_RULE
        self.chunk = DINOV2_CHUNK
        self.compute = f"float32, TF32 off, chunks of {DINOV2_CHUNK} (last padded)"  # in reference-statistics keys

    def extract(self, images: torch.Tensor, batch_size: int, device: torch.device | str) -> np.ndarray:
        from fairbench.features.clip import _full_float32

        check_images(images, "dinov2")
        check_batch_size(batch_size)  # kept for the common contract; the chunk size is fixed (module doc)
        device = torch.device(device)
        self.vit.to(device).eval()
        out = []
        with _full_float32(device), torch.inference_mode():
            for part in chunk_slices(len(images), self.chunk):
                x = dinov2_inputs(images[part])
                real = len(x)
                if real < self.chunk:
                    x = torch.cat([x, x.new_zeros((self.chunk - real, *x.shape[1:]))])
                out.append(self.vit(x.to(device))[:real].cpu())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float64)
        return torch.cat(out).numpy().astype(np.float64)


# --------------------------------------------------------------------------------------- weights


def _with_asset_hint(exc: FairbenchError, asset_id: str) -> FairbenchError:
    return FairbenchError(
        f"{exc}; `fairbench assets list` shows where it goes and `fairbench assets fetch {asset_id}` downloads it"
    )


def first_use_sha256(asset_id: str) -> str:
    """The sha256 that a trust-on-first-use network file is pinned to. Before the first use the file is
    fetched now (or the user's copy taken) and pinned, so a task never names these weights without their hash;
    offline without the file, one line names it, where it goes and how to get it."""
    from fairbench import atomic
    from fairbench.assets import get_asset, require
    from fairbench.assets.store import expected_sha256

    try:
        path = Path(require(asset_id))
    except FairbenchError as exc:
        raise _with_asset_hint(exc, asset_id) from None
    return expected_sha256(get_asset(asset_id)) or atomic.sha256_file(path)  # no pin only if it could not be written


def load_dinov2(network_id: str, sha256: str, device: torch.device | str = "cpu") -> DinoV2Network:
    """The backbone `network_id` (an alias loads its target) over its verified asset; refused unless the file
    hashes to `sha256`."""
    from fairbench.submission.checkpoint import safe_torch_load

    from fairbench.assets import require

    canonical, asset_id = ALIASES.get(network_id, network_id), DINOV2_ASSETS[network_id]
    try:
        require(asset_id)  # a missing file: the one line saying where it goes (then the pin is checked)
    except FairbenchError as exc:
        raise _with_asset_hint(exc, asset_id) from None
    path, digest = pinned_asset(asset_id, sha256)
    state = safe_torch_load(path, "DINOv2 weights file")  # weights_only=True: plain tensors or refused
    vit = vit_from_state_dict(state, VARIANTS[canonical], str(path))
    del state
    return DinoV2Network(canonical, vit.to(device), digest)


def _factory(network_id: str):
    return lambda sha256, device="cpu": load_dinov2(network_id, sha256, device)


for _id in DINOV2_ASSETS:
    FEATURE_NETWORKS.register(_id, _factory(_id))
