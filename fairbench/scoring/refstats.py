"""Cache of reference feature statistics under `$FAIRBENCH_HOME/refstats/<key>.npz`.

Reference statistics (mean and covariance of a real split's features) are costly to compute and identical
for every scored run of a task, so they are cached, keyed by everything that changes them. The key is the
sha256 of the canonical JSON of the key fields, which must include at least

- `data_hash`       the task's data hash (dataset, groups, group transform)
- `split`           which split the reference images come from
- `variant`         "as-is", "balanced" or "group:<name>"
- `feature_network` its id and sha256
- `resize_rule`     how images are prepared for the network
- `seed`            the subsampling seed (balanced variant)

and may include more (e.g. the split's slice). The fields are stored in the file too and compared on load,
so a file renamed into another key's place is not used. A file that cannot be read or does not match is
recomputed and overwritten (atomically: concurrent runs see the old file or the new one, never half).
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fairbench import atomic, paths
from fairbench.errors import FairbenchError
from fairbench.metrics.frechet import FeatureStats, load_stats, save_stats

REQUIRED_FIELDS = ("data_hash", "split", "variant", "feature_network", "resize_rule", "seed")
FIXED_VARIANTS = ("as-is", "balanced")
GROUP_PREFIX = "group:"

log = logging.getLogger(__name__)


def _canonical(fields: Mapping[str, Any]) -> str:
    try:
        return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"reference-statistics key fields must be plain JSON values ({exc})") from None


def check_key_fields(fields: Mapping[str, Any]) -> None:
    """Raise ValueError (a programming error, not a user's) when required fields are missing or malformed."""
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise ValueError(f"reference-statistics key misses {', '.join(missing)}")
    variant = fields["variant"]
    if not isinstance(variant, str) or not (
        variant in FIXED_VARIANTS or (variant.startswith(GROUP_PREFIX) and len(variant) > len(GROUP_PREFIX))
    ):
        raise ValueError(f"variant must be 'as-is', 'balanced' or 'group:<name>', got {variant!r}")
    _canonical(fields)


def cache_key(fields: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces, ASCII) of the key fields."""
    check_key_fields(fields)
    return hashlib.sha256(_canonical(fields).encode("ascii")).hexdigest()


def cache_path(fields: Mapping[str, Any]) -> Path:
    return paths.fairbench_home() / "refstats" / f"{cache_key(fields)}.npz"


def get_or_compute(key_fields: Mapping[str, Any], compute: Callable[[], FeatureStats]) -> FeatureStats:
    """The cached statistics for `key_fields`, or `compute()`'s, which are then cached."""
    path = cache_path(key_fields)
    wanted = json.loads(_canonical(key_fields))
    if path.exists():
        try:
            stats, meta = load_stats(path)
            if meta.get("key") != wanted:
                raise FairbenchError(f"{path}: stored key fields do not match the requested ones")
            return stats
        except FairbenchError as exc:
            log.warning("%s; recomputing the reference statistics", exc)
    stats = compute()
    save_stats(path, stats, {"key": wanted})
    return stats


def get_or_compute_features(key_fields: Mapping[str, Any], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The reference split's raw features (KID needs them, not just their moments), cached like the stats."""
    path = cache_path(key_fields).with_suffix(".features.npz")
    wanted = _canonical(key_fields)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                if str(npz["key"]) != wanted:
                    raise FairbenchError(f"{path}: stored key fields do not match the requested ones")
                return np.asarray(npz["features"], dtype=np.float64)
        except (FairbenchError, OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("%s; recomputing the reference features", exc)
    features = np.asarray(compute(), dtype=np.float64)
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, features=features, key=np.array(wanted))
    return features
