"""Wrap a converted StyleGAN2 state dict into a fairbench generator checkpoint (`fairbench import-stylegan2`).

Accepted: the plain conversion `{"g_ema": state_dict, "latent_avg": tensor}` (rosinality/stylegan2-pytorch
`convert_weight.py`), read with `torch.load(weights_only=True)`; every g_ema key and shape is checked against
the architecture in `baselines.stylegan2`, and the FIR buffers must hold the [1,3,3,1] filter.

Refused: NVIDIA's `.pkl` files. They are pickles of Python objects whose loading runs code named inside the
file (TensorFlow graphs or `dnnlib` modules), so fairbench never opens them, whatever the extension says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from fairbench import atomic
from fairbench.submission.checkpoint import GeneratorCheckpoint, safe_torch_load, save_checkpoint
from fairbench.errors import FairbenchError
from fairbench.methods import IMPORTERS, CheckpointImporter
from fairbench.provenance import versions
from fairbench.submission.state_dicts import layout_problems
from fairbench.task_registry import TaskSpec

from baselines.stylegan2 import StyleGAN2Generator, fir_kernel

CONVERT_HINT = (
    "convert it first, in an environment you trust, into a plain state dict: for NVIDIA's TensorFlow "
    "StyleGAN2 .pkl run rosinality/stylegan2-pytorch `convert_weight.py --repo <stylegan2 repo> FILE.pkl`, "
    "which writes {'g_ema': ..., 'latent_avg': ...} as a .pt; then run `fairbench import-stylegan2` on that .pt"
)
# torch's legacy (non-zip) serialisation starts with a protocol-2 pickle of this magic number; any other pickle
# stream (\x80 + protocol byte) is a plain Python pickle such as NVIDIA's network .pkl files.
_TORCH_LEGACY_HEAD = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


@dataclass(frozen=True)
class ImportOptions:
    truncation_psi: float = 1.0
    noise_mode: str = "const"
    output_size: int | None = None  # default: the task's image size
    channel_multiplier: int = 2  # config-f; not recoverable from files below 64 px
    name: str | None = None  # the leaderboard entry (default: stylegan2-<size>px[-psi<psi>])


def refuse_code_pickles(path: Path) -> None:
    """Refuse `.pkl` by extension and any raw pickle stream by its first bytes (it would carry code)."""
    if path.suffix.lower() in (".pkl", ".pickle"):
        raise FairbenchError(f"{path}: refused: a .pkl network file is pickled Python code; {CONVERT_HINT}")
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(_TORCH_LEGACY_HEAD))
    except OSError as exc:
        raise FairbenchError(f"{path}: cannot read ({exc.strerror})") from None
    if head[:1] == b"\x80" and not head.startswith(_TORCH_LEGACY_HEAD):
        raise FairbenchError(f"{path}: refused: the file is a raw Python pickle (code), not torch weights; {CONVERT_HINT}")


def read_converted(path: str | Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """(g_ema state dict, latent_avg or None) from a plain conversion; anything else is refused."""
    path = Path(path)
    if not path.is_file():
        raise FairbenchError(f"{path}: StyleGAN2 weights not found")
    refuse_code_pickles(path)
    raw = safe_torch_load(path, "StyleGAN2 weights file")
    if not isinstance(raw, dict) or not isinstance(raw.get("g_ema"), dict):
        keys = ", ".join(sorted(map(str, raw))[:8]) if isinstance(raw, dict) else type(raw).__name__
        raise FairbenchError(f"{path}: expected {{'g_ema': state_dict, 'latent_avg': tensor}}, found {keys}")
    g_ema = raw["g_ema"]
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in g_ema.items()):
        raise FairbenchError(f"{path}: g_ema must map parameter names to tensors")
    latent_avg = raw.get("latent_avg")
    if latent_avg is not None and not isinstance(latent_avg, torch.Tensor):
        raise FairbenchError(f"{path}: latent_avg must be a tensor")
    return g_ema, latent_avg


def infer_layout(g_ema: dict[str, torch.Tensor], source: Path | str) -> dict[str, int]:
    """size, style_dim, n_mlp and channel_max as the file's keys determine them (the rest is checked key by key)."""
    mapping = sorted(int(m.group(1)) for k in g_ema if (m := re.fullmatch(r"style\.(\d+)\.weight", k)))
    rgbs = {int(m.group(1)) for k in g_ema if (m := re.fullmatch(r"to_rgbs\.(\d+)\.bias", k))}
    if not mapping or "style.1.weight" not in g_ema or not rgbs or "input.input" not in g_ema:
        raise FairbenchError(f"{source}: g_ema lacks the StyleGAN2 mapping (style.N.weight), input.input or to_rgbs.K")
    if mapping != list(range(1, len(mapping) + 1)) or rgbs != set(range(len(rgbs))):
        raise FairbenchError(f"{source}: g_ema's style.N / to_rgbs.K layers are not numbered consecutively")
    return {
        "size": 2 ** (len(rgbs) + 2),
        "style_dim": int(g_ema["style.1.weight"].shape[1]),
        "n_mlp": len(mapping),
        "channel_max": int(g_ema["input.input"].shape[1]),  # 512 in config-f: the 4x4 constant's channels
    }


def check_against_architecture(g_ema: dict[str, torch.Tensor], model: StyleGAN2Generator, source: Path | str) -> None:
    """Every key present with its shape, nothing extra, and the FIR buffers equal to the paper's filter."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "latent_avg"}
    got = {k: tuple(v.shape) for k, v in g_ema.items()}
    problems = layout_problems(expected, got, shown=6)
    if problems:
        raise FairbenchError(f"{source}: g_ema does not fit StyleGAN2 config {model.size}px: {'; '.join(problems)}")
    fir = fir_kernel()
    for key, value in g_ema.items():
        if key.endswith(".kernel") and not torch.allclose(value.float(), fir * 4, atol=1e-6):
            raise FairbenchError(f"{source}: {key} is not the [1,3,3,1] FIR filter of StyleGAN2 config-f")
    bad = [k for k, v in g_ema.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise FairbenchError(f"{source}: non-finite values in {', '.join(bad[:5])}")


def import_stylegan2(
    weights: str | Path, out: str | Path, task: TaskSpec, options: ImportOptions = ImportOptions()
) -> GeneratorCheckpoint:
    """Check and wrap the converted weights as a fairbench checkpoint for `task`; written atomically to `out`."""
    weights = Path(weights)
    g_ema, latent_avg = read_converted(weights)
    layout = infer_layout(g_ema, weights)
    c, h, w = task.image_shape
    output_size = options.output_size or h
    if c != 3 or h != w:
        raise FairbenchError(f"task {task.id} wants {c}x{h}x{w} images; a StyleGAN2 generator makes square RGB")
    if output_size != h:
        raise FairbenchError(f"--output-size {output_size} differs from task {task.id}'s image size {h}")
    if layout["size"] < output_size or layout["size"] % output_size:
        raise FairbenchError(
            f"{weights}: a {layout['size']} px generator cannot be scored at task {task.id}'s {output_size} px "
            f"(the size must be a multiple of it)"
        )
    if task.conditional:
        raise FairbenchError(f"task {task.id} is conditional; a StyleGAN2 FFHQ generator is unconditional")
    arch_kwargs = {
        **layout,
        "channel_multiplier": options.channel_multiplier,
        "truncation_psi": float(options.truncation_psi),
        "noise_mode": options.noise_mode,
        "output_size": output_size,
    }
    try:
        with torch.device("meta"):
            skeleton = StyleGAN2Generator(**arch_kwargs)
    except ValueError as exc:
        raise FairbenchError(f"{weights}: {exc}") from None
    check_against_architecture(g_ema, skeleton, weights)
    had_latent_avg = latent_avg is not None
    if latent_avg is None:
        if options.truncation_psi != 1.0:
            raise FairbenchError(f"{weights}: has no latent_avg, so truncation (psi {options.truncation_psi}) is impossible")
        latent_avg = torch.zeros(layout["style_dim"])  # never read at psi 1
    if tuple(latent_avg.shape) not in ((layout["style_dim"],), (1, layout["style_dim"])):
        raise FairbenchError(f"{weights}: latent_avg has shape {list(latent_avg.shape)}, expected [{layout['style_dim']}]")
    state = {k: v.detach().float().contiguous().clone() for k, v in g_ema.items()}
    state["latent_avg"] = latent_avg.detach().float().reshape(-1).clone()
    psi = float(options.truncation_psi)
    name = options.name or f"stylegan2-{layout['size']}px" + ("" if psi == 1.0 else f"-psi{psi:g}")
    ckpt = GeneratorCheckpoint(
        arch="stylegan2",
        arch_kwargs=arch_kwargs,
        state_dict=state,
        task=task.id,
        task_hash=task.task_hash,
        method=name,
        config={
            "imported_from": weights.name,
            "source_sha256": atomic.sha256_file(weights),
            "latent_avg_in_file": had_latent_avg,
            "truncation_psi": psi,
            "noise_mode": options.noise_mode,
        },
        seed=0,  # a pretrained generator's training seed is unknown; one import is one entry
        versions=versions(),
        data_hash=task.data_hash,
    )
    save_checkpoint(out, ckpt)
    return ckpt


IMPORTERS.register("stylegan2", CheckpointImporter(options=ImportOptions, run=import_stylegan2))
