"""Cache of reference feature statistics under `$FAIRBENCH_HOME/refstats/<key>.npz`.

Reference statistics (mean and covariance of a real split's features) are costly to compute and identical
for every scored run of a task, so they are cached, keyed by everything that changes them. The key is the
sha256 of the canonical JSON of the key fields, which must include at least

- `data_hash`       the task's data hash (dataset, groups, group transform)
- `split`           which split the reference images come from
- `variant`         "as-is", "balanced", "group:<name>", or "floor" (the network's floor, see below)
- `feature_network` its id and sha256
- `resize_rule`     how images are prepared for the network
- `seed`            the subsampling seed (balanced variant)

and may include more (e.g. the split's slice). The fields are stored in the file too and compared on load,
so a file renamed into another key's place is not used. A file that cannot be read or does not match is
recomputed and overwritten (atomically: concurrent runs see the old file or the new one, never half).

Beside the statistics, three other things that depend on the reference alone are cached the same way: its
raw features (KID), each group's k-nearest-neighbour radii (PRDC; `knn_k` in the key), and the feature
network's floor (FD between two halves of the reference, `variant` "floor"; JSON).
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
FIXED_VARIANTS = ("as-is", "balanced", "floor")
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
        raise ValueError(f"variant must be 'as-is', 'balanced', 'floor' or 'group:<name>', got {variant!r}")
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
    return _cached_array(key_fields, ".features.npz", "features", compute)


def get_or_compute_radii(key_fields: Mapping[str, Any], k: int, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """A reference group's squared k-nearest-neighbour radii (`prdc.knn_square_radii`): a third of PRDC's
    work, the same for every run scored against that group."""
    return _cached_array({**key_fields, "knn_k": k}, ".radii.npz", "radii", compute)


def _cached_array(key_fields: Mapping[str, Any], suffix: str, what: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    path = cache_path(key_fields).with_suffix(suffix)
    wanted = _canonical(key_fields)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as npz:
                if str(npz["key"]) != wanted:
                    raise FairbenchError(f"{path}: stored key fields do not match the requested ones")
                return np.asarray(npz[what], dtype=np.float64)
        except (FairbenchError, OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("%s; recomputing the reference %s", exc, what)
    values = np.asarray(compute(), dtype=np.float64)
    with atomic.atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **{what: values}, key=np.array(wanted))
    return values


def get_or_compute_floor(key_fields: Mapping[str, Any], compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The feature network's floor on the reference (a JSON object, `scoring.quality.network_floor`): its
    Fréchet distances cost eigen-decompositions of d x d matrices, seconds each at Inception's d = 2048."""
    if key_fields.get("variant") != "floor":
        raise ValueError("the floor's key fields need variant 'floor'")
    path = cache_path(key_fields).with_suffix(".floor.json")
    wanted = json.loads(_canonical(key_fields))
    if path.exists():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(stored, dict) or stored.get("key") != wanted or not isinstance(stored.get("floor"), dict):
                raise FairbenchError(f"{path}: stored key fields do not match the requested ones")
            return stored["floor"]
        except (FairbenchError, OSError, ValueError) as exc:
            log.warning("%s; recomputing the feature network's floor", exc)
    floor = compute()
    atomic.write_text(path, json.dumps({"key": wanted, "floor": floor}, sort_keys=True, allow_nan=False) + "\n")
    return floor
