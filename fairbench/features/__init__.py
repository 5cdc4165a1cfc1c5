"""Feature networks for the FID family, registered by name and loaded by (id, sha256).

A loaded network has `id`, `sha256` (of its weights file), `dim`, `resize_rule` (how images are prepared,
recorded in reference-statistics cache keys) and `extract(images, batch_size, device)`, which maps uint8
N x C x H x W images to an N x dim float64 array. Networks run in eval mode with no batch statistics, so
each image's features do not depend on the batch size: exactly for the domain networks (float32 over fixed
chunks, see `DomainNetwork`), up to float32 rounding of the matrix kernels for Inception.

- `domain-digits`, `domain-mnist`: small CNN digit classifiers trained on a task's TRAINING split for the
  class label (both background groups included), shipped inside the package as safetensors with a JSON card,
  exactly like the judges (`fairbench.networks.domain` trains and finds them; `fairbench.features.domain` adapts
  them here). The feature is the 128-d penultimate layer *before* its ReLU: a ReLU output has
  exact zeros and units that are dead on some inputs (a covariance with zero rows, far from Gaussian), while the
  pre-activation carries everything the classifier head sees, is dense, and is closer to the Gaussian that the
  Fréchet distance assumes.
- `inception`: computed by clean-fid 0.1.35 itself (`pip install 'fairbench[quality]'`): its `InceptionV3W`
  wrapper over the TorchScript `inception-2015-12-05.pt` (2048-d pool features), whose weights come only from
  the asset manifest (`fairbench.assets.require`, sha256-checked; clean-fid's own download into /tmp is never
  reached), and its `get_model_features` in the default "clean" mode with that wrapper as the extractor:
  every channel resized to 299x299 by PIL bicubic on float32 values (no quantisation), clipped to [0, 255],
  then (x - 128) / 128 into the network's `layers`. Grey images are replicated to RGB first.
"""

from __future__ import annotations

# The face of the package: every network registered, the whole API under one name. The submodules import
# `fairbench.features.base` (and each other) directly, never this module.
from fairbench.features import clip  # noqa: F401  (registers "clip")
from fairbench.features import dinov2  # noqa: F401  (registers "dinov2", "dinov2-vits14", ...)
from fairbench.features.base import FEATURE_NETWORKS, FeatureFactory, FeatureNetwork, load_feature_network
from fairbench.features.domain import DomainNetwork, load_domain_network, load_first_use_network
from fairbench.features.inception import (  # registers "inception"
    INCEPTION_ASSET,
    INCEPTION_DIM,
    INCEPTION_SIZE,
    inception_inputs,
    load_inception,
)

__all__ = [
    "FEATURE_NETWORKS", "INCEPTION_ASSET", "INCEPTION_DIM", "INCEPTION_SIZE", "DomainNetwork", "FeatureFactory",
    "FeatureNetwork", "clip", "dinov2", "inception_inputs", "load_domain_network", "load_feature_network",
    "load_first_use_network", "load_inception",
]
