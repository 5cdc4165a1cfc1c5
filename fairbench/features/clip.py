"""`clip`: the FID family on CLIP image embeddings (Fréchet distance in CLIP space; Stein et al. 2023 show
Inception's features miss what people see, and Kynkäänniemi et al. 2023 that they lean on ImageNet classes).

What is computed, exactly:
- Network: OpenAI's CLIP ResNet-50 image tower, built by open_clip (`pip install 'fairbench[clip]'`) with its
  own OpenAI loader `open_clip.model.build_model_from_openai_state_dict` (architecture read from the tensor
  shapes, QuickGELU as OpenAI trained it), in float32. The feature is `encode_image` unnormalised: the 1024-d
  attention-pool projection, as clean-fid 0.1.35's `clip_vit_b_32` mode uses its CLIP (a normalised embedding
  would put every image on a sphere, further from the Gaussian that the Fréchet distance assumes).
- Weights: the asset `clip-rn50-openai` (`RN50.pt`, sha256-checked by `fairbench.assets.require`). That file
  is a TorchScript archive. open_clip's `load_openai_model` would `torch.jit.load` it (compiling and running
  the archive's TorchScript code, and unpickling its module tree) and fall back to `torch.load` without
  `weights_only`; fairbench calls neither. `fairbench.features.torchscript_tensors` reads the tensors out of the zip
  as data (no global imported or called, the code directory never read); the ones open_clip's RN50 CLIP
  declares as parameters or buffers are handed to open_clip's builder (a missing one is an error; the rest,
  OpenAI's scalar `input_resolution` / `context_length` / `vocab_size`, are dropped as open_clip drops them),
  the float16 weights are cast to float32 as open_clip does for fp32 inference, and only the image tower is kept.
- Preprocessing: CLIP's own, through open_clip's `image_transform(224, is_train=False)` on each image as a
  PIL image: resize so the short side is 224 by PIL bicubic (antialiased, rounded to uint8 as PIL does),
  center crop 224x224, grey replicated to RGB, to [0, 1], then normalised by CLIP's mean and std. Small
  images (32x32) are therefore upsampled 7x; that is what CLIP sees, and it is recorded in `resize_rule`.
- Determinism: each image is preprocessed alone and the network runs in eval mode, so a feature does not
  depend on its batch beyond float32 kernel rounding (~1e-6 relative); on CUDA, TF32 is switched off while
  features are extracted (it would cut matmul precision to 10 bits).

CLIP RN50 costs about 4 GFLOPs per image at 224x224: seconds for 10,000 images on a GPU, but tens of minutes
on 2 CPU cores, so tasks opt in (`quality.gpu_feature_network`, or `fairbench score --feature-network clip`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from fairbench.errors import FairbenchError
from fairbench.features.base import FEATURE_NETWORKS, FeatureNetwork, check_batch_size, check_images, pinned_asset

CLIP_ID = "clip"
CLIP_ASSET = "clip-rn50-openai"
CLIP_ARCH = "RN50"  # open_clip's config name for OpenAI's ResNet-50 CLIP
CLIP_SIZE = 224
CLIP_DIM = 1024
OPEN_CLIP_MISSING = "the clip feature network needs open_clip: pip install 'fairbench[clip]'"


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError:
        raise FairbenchError(OPEN_CLIP_MISSING) from None
    return open_clip


def clip_preprocess() -> Callable[[Any], torch.Tensor]:
    """open_clip's evaluation transform for OpenAI's CLIP, every choice spelled out (not left to defaults)."""
    open_clip = _open_clip()
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    return open_clip.image_transform(
        CLIP_SIZE, is_train=False, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD,
        resize_mode="shortest", interpolation="bicubic",
    )


def clip_resize_rule() -> str:
    open_clip = _open_clip()
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    return (
        f"open_clip {open_clip.__version__} image_transform({CLIP_SIZE}, is_train=False) per image as PIL: short "
        f"side resized to {CLIP_SIZE} by PIL bicubic (uint8), center crop {CLIP_SIZE}x{CLIP_SIZE}, grey replicated "
        f"to RGB, /255, normalised by mean {list(OPENAI_DATASET_MEAN)} std {list(OPENAI_DATASET_STD)}; float32"
    )


def clip_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W (C = 1 or 3) -> float32 N x 3 x 224 x 224: what the network is given."""
    from PIL import Image

    check_images(images, "clip")
    c = images.shape[1]
    if c not in (1, 3):
        raise FairbenchError(f"clip takes 1- or 3-channel images, got {c} channels")
    transform = clip_preprocess()
    arrays = images.permute(0, 2, 3, 1).numpy()
    pics = (Image.fromarray(a[:, :, 0], "L") if c == 1 else Image.fromarray(a, "RGB") for a in arrays)
    out = [transform(p) for p in pics]
    return torch.stack(out) if out else torch.zeros((0, 3, CLIP_SIZE, CLIP_SIZE))


class ClipNetwork(FeatureNetwork):
    """An open_clip image tower (`CLIP.visual`), fed by CLIP's preprocessing; `encode_image` without normalising."""

    def __init__(self, visual: nn.Module, sha256: str) -> None:
        self.visual = visual.float().eval()
        self.id = CLIP_ID
        self.sha256 = sha256
        self.dim = CLIP_DIM
        self.resize_rule = clip_resize_rule()

    def extract(self, images: torch.Tensor, batch_size: int, device: torch.device | str) -> np.ndarray:
        check_images(images, "clip")
        check_batch_size(batch_size)
        device = torch.device(device)
        self.visual.to(device).eval()
        out = []
        with _full_float32(device), torch.inference_mode():
            for i in range(0, len(images), batch_size):
                x = clip_inputs(images[i : i + batch_size]).to(device)
                out.append(self.visual(x).float().cpu())
        if not out:
            return np.zeros((0, self.dim), dtype=np.float64)
        feats = torch.cat(out).numpy().astype(np.float64)
        if feats.shape[1] != self.dim:
            raise FairbenchError(f"clip: the image tower gives {feats.shape[1]} features, expected {self.dim}")
        return feats


class _full_float32:
    """Switch TF32 off on CUDA for the duration (restored after), so features keep float32 precision."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __enter__(self) -> None:
        if self.cuda:
            self.saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.saved


def clip_from_openai_tensors(tensors: dict[str, torch.Tensor], where: str = "clip weights") -> nn.Module:
    """open_clip's CLIP (RN50) from the tensors of OpenAI's archive, in float32, through open_clip's own
    OpenAI builder; only the tensors its RN50 model declares are used (a missing one is an error)."""
    open_clip = _open_clip()
    from open_clip.model import CLIP, build_model_from_openai_state_dict

    cfg = open_clip.get_model_config(CLIP_ARCH)
    with torch.device("meta"):  # only the names: no memory, no random init
        wanted = list(CLIP(**cfg, quick_gelu=True).state_dict())
    missing = [k for k in wanted if k not in tensors]
    if missing:
        raise FairbenchError(
            f"{where}: not OpenAI's CLIP {CLIP_ARCH}: {len(missing)} of its {len(wanted)} tensors are missing "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
        )
    state = {k: tensors[k] for k in wanted}
    try:
        model = build_model_from_openai_state_dict(state, quick_gelu=True, cast_dtype=None)
    except (RuntimeError, KeyError, AssertionError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FairbenchError(f"{where}: open_clip cannot build CLIP {CLIP_ARCH} from these tensors ({first})") from None
    return model.float().eval()


def load_clip(sha256: str, device: torch.device | str = "cpu") -> ClipNetwork:
    """CLIP RN50's image tower over the verified asset; refused unless the file hashes to `sha256`."""
    _open_clip()  # before require(): no 244 MB download for a network that cannot run
    from fairbench.features.torchscript_tensors import torchscript_tensors

    path, digest = pinned_asset(CLIP_ASSET, sha256)
    model = clip_from_openai_tensors(torchscript_tensors(path), str(path))
    return ClipNetwork(model.visual.to(device), digest)


FEATURE_NETWORKS.register(CLIP_ID, load_clip)
