"""The local copies of assets: where they live, whether their hashes hold, and the one-line fix when not.

Hashes of verified files are cached by (size, mtime) in `.hashes.json` beside the assets; trust-on-first-use
pins live in `.pins.json`. Both are caches of facts any run can recompute, so a failed write only costs time.
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairbench import atomic
from fairbench.assets.manifest import SHA256, Asset, get_asset
from fairbench.paths import fairbench_home

HASH_CACHE = ".hashes.json"
PINS = ".pins.json"


class AssetState(str, enum.Enum):
    VERIFIED = "verified"  # present, hash matches the manifest (or the trust-on-first-use pin)
    UNVERIFIED = "unverified"  # present, nothing to check it against yet (unpinned TOFU, user file without hash)
    MISSING = "missing"
    CORRUPT = "corrupt"  # present, hash differs: refused
    USER_SUPPLIED_MISSING = "user-supplied-missing"


@dataclass(frozen=True)
class AssetStatus:
    asset: Asset
    state: AssetState
    path: Path
    expected_sha256: str | None  # the manifest's hash or the pin
    actual_sha256: str | None  # of the local file, when present

    @property
    def usable(self) -> bool:
        return self.state in (AssetState.VERIFIED, AssetState.UNVERIFIED)

    @property
    def label(self) -> str:
        return {
            AssetState.VERIFIED: "present",
            AssetState.UNVERIFIED: "present (unverified)",
            AssetState.MISSING: "missing",
            AssetState.CORRUPT: "corrupt",
            AssetState.USER_SUPPLIED_MISSING: "user-supplied, not present",
        }[self.state]


def assets_root() -> Path:
    return fairbench_home() / "assets"


def asset_path(asset_id: str | Asset, manifest: Mapping[str, Asset] | None = None) -> Path:
    """Where the asset lives (or would live) under `$FAIRBENCH_HOME/assets/`."""
    return assets_root() / get_asset(asset_id, manifest).path


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        atomic.write_text(path, json.dumps(data, indent=1, sort_keys=True))
    except OSError:
        pass  # a cache that cannot be written only costs time


def _hash_key(path: Path) -> str:
    return path.relative_to(assets_root()).as_posix() if path.is_relative_to(assets_root()) else str(path)


def _file_sha256(path: Path, use_cache: bool = True) -> str:
    """sha256 of a file, remembered by (size, mtime_ns) in `.hashes.json` under the assets root."""
    st = path.stat()
    entry = _read_json(assets_root() / HASH_CACHE).get(_hash_key(path))
    same = isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
    if use_cache and same:
        digest = entry.get("sha256")
        if isinstance(digest, str) and SHA256.fullmatch(digest):
            return digest
    digest = atomic.sha256_file(path)
    remember_hash(path, digest, st)
    return digest


def remember_hash(path: Path, digest: str, st: os.stat_result | None = None) -> None:
    """Cache a file's sha256 under its (size, mtime) as of `st` (taken before hashing; default: now)."""
    st = st or path.stat()
    cache_file = assets_root() / HASH_CACHE
    cache = _read_json(cache_file)
    cache[_hash_key(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    _write_json(cache_file, cache)


def pinned_sha256(asset: Asset) -> str | None:
    """The trust-on-first-use pin of an asset, if one was recorded."""
    entry = _read_json(assets_root() / PINS).get(asset.id)
    digest = entry.get("sha256") if isinstance(entry, dict) else None
    return digest if isinstance(digest, str) and SHA256.fullmatch(digest) else None


def set_pin(asset: Asset, digest: str, origin: str) -> None:
    """Pin the first accepted copy of a trust-on-first-use asset; `origin` says where it came from."""
    pins = _read_json(assets_root() / PINS)
    pins[asset.id] = {"sha256": digest, "origin": origin}
    _write_json(assets_root() / PINS, pins)


def expected_sha256(asset: Asset) -> str | None:
    """The hash a local copy must have: the manifest's, or for trust-on-first-use the pin (None before one)."""
    return asset.sha256 if asset.verify == "sha256" else pinned_sha256(asset)


def matches_prefix(asset: Asset, digest: str) -> bool:
    return asset.sha256_prefix is None or digest.startswith(asset.sha256_prefix)


def status(
    asset_id: str | Asset, manifest: Mapping[str, Asset] | None = None, *, use_cache: bool = True
) -> AssetStatus:
    """Whether the asset is present and what its hash says: verified, unverified, missing, corrupt."""
    asset = get_asset(asset_id, manifest)
    path = assets_root() / asset.path
    expected = expected_sha256(asset)
    if not path.is_file():
        state = AssetState.USER_SUPPLIED_MISSING if asset.user_supplied else AssetState.MISSING
        return AssetStatus(asset, state, path, expected, None)
    actual = _file_sha256(path, use_cache)
    if expected is not None:
        state = AssetState.VERIFIED if actual == expected else AssetState.CORRUPT
    elif not matches_prefix(asset, actual):
        state = AssetState.CORRUPT
    else:
        state = AssetState.UNVERIFIED
    return AssetStatus(asset, state, path, expected, actual)


def _hash_words(asset: Asset, expected: str | None) -> str:
    if expected is not None:
        return f"sha256 {expected}"
    if asset.sha256_prefix is not None:
        return f"sha256 starting {asset.sha256_prefix}"
    return "sha256 not published"


def placement_hint(asset_id: str | Asset, manifest: Mapping[str, Asset] | None = None) -> str:
    """'place FILE (sha256 …) at PATH, downloadable from URL' — the fix for a missing or refused file."""
    asset = get_asset(asset_id, manifest)
    path = assets_root() / asset.path
    hint = f"place {asset.filename} ({_hash_words(asset, expected_sha256(asset))}) at {path}"
    if asset.user_supplied:
        return hint + " (user-supplied: no public download; " + _first_sentence(asset.description) + ")"
    return hint + f", downloadable from {asset.url}"


def _first_sentence(text: str) -> str:
    text = " ".join(text.split())
    return text.split(". ")[0].rstrip(".")


def problem_message(st: AssetStatus, why: str = "") -> str:
    """One line: what is wrong with a missing or refused asset, and how to fix it."""
    a = st.asset
    if st.state is AssetState.CORRUPT:
        want = _hash_words(a, st.expected_sha256)
        want = want.removeprefix("sha256 ")
        head = f"asset {a.id!r}: {st.path} has sha256 {st.actual_sha256}, expected {want}; refused"
        return f"{head}: delete it and {placement_hint(a)}{why}"
    return f"asset {a.id!r} is missing: {placement_hint(a)}{why}"
