"""The `inception` feature network: clean-fid's own pipeline over the sha256-checked TorchScript asset (see the
`fairbench.features` module docstring for the exact preprocessing)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fairbench.errors import FairbenchError
from fairbench.features.base import FEATURE_NETWORKS, FeatureNetwork, check_batch_size, check_images, pinned_asset

INCEPTION_ASSET = "inception-2015-12-05"
INCEPTION_SIZE = 299
INCEPTION_DIM = 2048

INCEPTION_RESIZE_RULE = (
    "clean-fid 0.1.35 'clean': each channel as float32 resized to 299x299 by PIL bicubic, clipped to [0, 255], "
    "not quantised; grey replicated to RGB; (x - 128) / 128 into the TorchScript's layers"
)
CLEAN_FID_MISSING = "inception FID needs clean-fid: pip install 'fairbench[quality]'"


def _clean_fid() -> tuple[Any, Any]:
    """clean-fid's `fid` module and its `InceptionV3W` wrapper, or a FairbenchError saying how to install it."""
    try:
        from cleanfid import fid
        from cleanfid.inception_torchscript import InceptionV3W
    except ImportError:
        raise FairbenchError(CLEAN_FID_MISSING) from None
    return fid, InceptionV3W


def _rgb(images: torch.Tensor) -> torch.Tensor:
    check_images(images, "inception")
    c = images.shape[1]
    if c not in (1, 3):
        raise FairbenchError(f"inception takes 1- or 3-channel images, got {c} channels")
    return images.expand(-1, 3, -1, -1) if c == 1 else images  # grey -> RGB, as PIL's convert("RGB") does


def _through_clean_fid(images: torch.Tensor, model: Callable[[torch.Tensor], torch.Tensor], batch_size: int,
                       device: torch.device | str) -> np.ndarray:
    """`model` applied to uint8 N x C x H x W images by clean-fid's own `get_model_features` in "clean" mode: its
    resizer (`build_resizer("clean")`, image by image on the CPU), then `model` on each resized batch.

    `get_model_features(G, model, ...)` is where `compute_fid(gen=G, custom_feat_extractor=model)` sends its
    extractor; it is called directly because fairbench needs the features (for its own reference statistics,
    class-balanced references and KID), not one FID against clean-fid's downloadable statistics or folders on
    disk. The generator `G` ignores its latents and serves one chunk of our images; one call per chunk, sized
    to it, because clean-fid indexes exactly `batch_size` images per call. clean-fid draws those latents from
    torch's global generator, so that draw runs in a forked RNG state: extraction leaves the caller's seed alone.
    """
    fid, _ = _clean_fid()
    images = _rgb(images)
    check_batch_size(batch_size)
    out = []
    with torch.random.fork_rng(devices=[]):
        for i in range(0, len(images), batch_size):
            chunk = images[i : i + batch_size]
            feats = fid.get_model_features(
                lambda z, chunk=chunk: chunk, model, mode="clean", z_dim=1, num_gen=len(chunk),
                batch_size=len(chunk), device=torch.device(device), verbose=False,
            )
            out.append(np.asarray(feats).reshape(len(chunk), -1))
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def inception_inputs(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x C x H x W (C = 1 or 3) -> float32 N x 3 x 299 x 299 in [0, 255]: exactly what clean-fid's
    pipeline hands the network (the same call as `extract`, with the identity in the network's place)."""
    n = len(_rgb(images))
    arr = _through_clean_fid(images, lambda x: x, max(n, 1), "cpu")
    return torch.from_numpy(arr.reshape(n, 3, INCEPTION_SIZE, INCEPTION_SIZE))


class InceptionNetwork(FeatureNetwork):
    """clean-fid's `InceptionV3W` (the network clean-fid's "clean" mode builds), fed by clean-fid's pipeline."""

    def __init__(self, extractor: torch.nn.Module, sha256: str) -> None:
        self.extractor = extractor.eval()
        self.id = "inception"
        self.sha256 = sha256
        self.dim = INCEPTION_DIM
        self.resize_rule = INCEPTION_RESIZE_RULE

    def extract(self, images: torch.Tensor, batch_size: int, device: torch.device | str) -> np.ndarray:
        self.extractor.to(device).eval()
        feats = _through_clean_fid(images, self.extractor, batch_size, device)
        if len(feats) == 0:
            return np.zeros((0, INCEPTION_DIM), dtype=np.float64)
        return feats.astype(np.float64)


def load_inception(sha256: str, device: torch.device | str = "cpu") -> InceptionNetwork:
    """clean-fid's InceptionV3W over the verified asset; refused unless the file hashes to `sha256`.

    The weights come from `fairbench.assets.require` only (sha256-checked; offline it names the file and where
    to put it). clean-fid's own download (`check_download_inception` into /tmp, reached through
    `build_feature_extractor`) is never called: `InceptionV3W(folder, download=False)` loads
    `<folder>/inception-2015-12-05.pt`, which is the asset's own cache path, so clean-fid's wrapper (its
    normalisation and 2048-d view) is built over the verified file as it is, with no link or copy.
    """
    _, InceptionV3W = _clean_fid()  # before require(): no 95 MB download for a network that cannot run
    path, digest = pinned_asset(INCEPTION_ASSET, sha256)
    if path.name != f"{INCEPTION_ASSET}.pt":
        raise FairbenchError(
            f"{path}: clean-fid's InceptionV3W loads <folder>/{INCEPTION_ASSET}.pt; the asset manifest must keep "
            "that file name"
        )
    try:
        with warnings.catch_warnings():
            # torch >= 2.9 marks TorchScript deprecated; these weights exist only as TorchScript.
            warnings.simplefilter("ignore", FutureWarning)
            extractor = InceptionV3W(str(path.parent), download=False, resize_inside=False)
    except (RuntimeError, OSError, ValueError, AttributeError) as exc:
        raise FairbenchError(f"{path}: cannot load the Inception TorchScript ({exc})") from None
    return InceptionNetwork(extractor.to(device), digest)


FEATURE_NETWORKS.register("inception", load_inception)
