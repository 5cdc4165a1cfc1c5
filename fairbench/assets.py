"""Downloadable files (feature networks, IQA weights): one manifest, verified by sha256, fetched atomically.

The manifest (`assets.yaml`, shipped in the package; `FAIRBENCH_ASSET_MANIFEST` or `load_manifest(path)` point
elsewhere) lists each file once: URL, sha256, licence and where it lives under `$FAIRBENCH_HOME/assets/`.

- `require(id)` returns the path of a verified local copy. When the file is missing (or its hash is wrong) it
  downloads it, unless `FAIRBENCH_OFFLINE=1` or the file is user-supplied; then it raises a `FairbenchError`
  whose one line names the file, its sha256, the exact path to put it at and where to download it.
- `fetch(id)` streams the URL into a temp file in the target folder, hashing as it goes; a hash mismatch, a
  short read or a dropped connection deletes the temp file, so the final path only ever holds a verified file.
- A local file whose hash differs from the manifest's is refused, never used (state `corrupt`).
- Hashes of verified files are cached by (size, mtime) in `.hashes.json` beside the assets so `fairbench assets
  verify` does not re-read gigabytes; any change to a file's size or mtime re-hashes it.
- `verify: trust-on-first-use`: for a file whose full sha256 no public source gives. The first copy that
  matches `sha256_prefix` (when the manifest has one) is pinned in `.pins.json`; afterwards it is checked
  against that pin like any other hash. Delete the pin to accept a new copy.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fairbench import atomic
from fairbench.errors import FairbenchError
from fairbench.paths import fairbench_home, offline
from fairbench.strict import from_dict

MANIFEST_ENV = "FAIRBENCH_ASSET_MANIFEST"
HASH_CACHE = ".hashes.json"
PINS = ".pins.json"
CHUNK = 1 << 20
TIMEOUT_S = 60.0

Progress = Callable[[int, "int | None"], None]  # (bytes done, bytes expected or None)

_SHA256 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class Asset:
    id: str
    path: str  # relative to $FAIRBENCH_HOME/assets/
    licence: str
    description: str
    used_by: list[str]
    url: str | None = None
    mirrors: list[str] = field(default_factory=list)
    sha256: str | None = None
    verify: Literal["sha256", "trust-on-first-use"] = "sha256"
    sha256_prefix: str | None = None
    size_bytes: int | None = None
    user_supplied: bool = False
    source: str = ""

    @property
    def filename(self) -> str:
        return Path(self.path).name

    @property
    def urls(self) -> list[str]:
        return [u for u in [self.url, *self.mirrors] if u]

    @property
    def downloadable(self) -> bool:
        return not self.user_supplied and bool(self.urls)


@dataclass(frozen=True)
class _Manifest:
    version: int
    assets: list[Asset]


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


# --------------------------------------------------------------------------------------------- manifest


def manifest_location() -> Path | None:
    env = os.environ.get(MANIFEST_ENV)
    return Path(env).expanduser() if env else None


def load_manifest(path: str | os.PathLike[str] | None = None) -> dict[str, Asset]:
    """Parse the manifest strictly: unknown keys, bad hashes, non-https URLs or duplicate ids are errors."""
    path = Path(path) if path is not None else manifest_location()
    if path is None:
        where = "fairbench/assets.yaml"
        # fairbench is a namespace package (no __init__.py), where importlib.resources.files() is unreliable
        text = (Path(__file__).resolve().parent / "assets.yaml").read_text(encoding="utf-8")
    else:
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise FairbenchError(f"cannot read asset manifest {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise FairbenchError(f"{where}: invalid YAML ({exc})") from None
    manifest = from_dict(_Manifest, data, where)
    if manifest.version != 1:
        raise FairbenchError(f"{where}: unsupported manifest version {manifest.version}")
    out: dict[str, Asset] = {}
    for i, asset in enumerate(manifest.assets):
        _validate(asset, f"{where}.assets[{i}]")
        if asset.id in out:
            raise FairbenchError(f"{where}: duplicate asset id {asset.id!r}")
        out[asset.id] = asset
    return out


def _validate(a: Asset, where: str) -> None:
    def fail(msg: str) -> FairbenchError:
        return FairbenchError(f"{where} ({a.id}): {msg}")

    if not _ID.fullmatch(a.id):
        raise fail("id must be lower-case letters, digits, '.', '_' or '-'")
    rel = Path(a.path)
    if not a.path or rel.is_absolute() or ".." in rel.parts or a.path.startswith(("~", "/")):
        raise fail(f"path must be relative to the assets folder, got {a.path!r}")
    if rel.name.startswith("."):
        raise fail("path must not name a hidden file")
    if not a.licence.strip():
        raise fail("licence is required")
    for url in a.urls:
        if not _allowed_url(url):
            raise fail(f"URLs must be https (plain http only to this machine, for tests), got {url!r}")
    if a.sha256 is not None and not _SHA256.fullmatch(a.sha256):
        raise fail("sha256 must be 64 lower-case hex digits")
    if a.sha256_prefix is not None and not (_HEX.fullmatch(a.sha256_prefix) and 8 <= len(a.sha256_prefix) < 64):
        raise fail("sha256_prefix must be 8 to 63 lower-case hex digits")
    if a.size_bytes is not None and a.size_bytes <= 0:
        raise fail("size_bytes must be positive")
    if a.user_supplied:
        if a.urls:
            raise fail("a user-supplied asset has no url")
        if a.verify != "sha256" or a.sha256_prefix is not None:
            raise fail("verify and sha256_prefix apply to downloadable assets only")
        return
    if not a.url:
        raise fail("a downloadable asset needs a url (or user_supplied: true)")
    if a.verify == "sha256":
        if a.sha256 is None:
            raise fail("sha256 is required (or verify: trust-on-first-use, with the reason in source)")
        if a.sha256_prefix is not None:
            raise fail("sha256_prefix is for trust-on-first-use assets")
    else:
        if a.sha256 is not None:
            raise fail("a trust-on-first-use asset has sha256: null")
        if not a.source.strip():
            raise fail("a trust-on-first-use asset must say in source why no sha256 is published")


def _allowed_url(url: str) -> bool:
    parts = urllib.parse.urlsplit(url)
    if not parts.netloc:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def get_asset(asset: str | Asset, manifest: Mapping[str, Asset] | None = None) -> Asset:
    """The manifest entry for an id (an unknown id is a FairbenchError naming the close ones)."""
    if isinstance(asset, Asset):
        return asset
    assets = manifest if manifest is not None else load_manifest()
    try:
        return assets[asset]
    except KeyError:
        from fairbench.registry import unknown_name_message

        raise FairbenchError(unknown_name_message("asset", asset, list(assets))) from None


# --------------------------------------------------------------------------------------------- local state


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


def _file_sha256(path: Path, use_cache: bool = True) -> str:
    """sha256 of a file, remembered by (size, mtime_ns) in `.hashes.json` under the assets root."""
    st = path.stat()
    cache_file = assets_root() / HASH_CACHE
    key = path.relative_to(assets_root()).as_posix() if path.is_relative_to(assets_root()) else str(path)
    cache = _read_json(cache_file)
    entry = cache.get(key)
    same = isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns
    if use_cache and same:
        digest = entry.get("sha256")
        if isinstance(digest, str) and _SHA256.fullmatch(digest):
            return digest
    digest = atomic.sha256_file(path)
    cache[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    _write_json(cache_file, cache)
    return digest


def _pin(asset: Asset) -> str | None:
    entry = _read_json(assets_root() / PINS).get(asset.id)
    digest = entry.get("sha256") if isinstance(entry, dict) else None
    return digest if isinstance(digest, str) and _SHA256.fullmatch(digest) else None


def _set_pin(asset: Asset, digest: str, origin: str) -> None:
    pins = _read_json(assets_root() / PINS)
    pins[asset.id] = {"sha256": digest, "origin": origin}
    _write_json(assets_root() / PINS, pins)


def _expected(asset: Asset) -> str | None:
    return asset.sha256 if asset.verify == "sha256" else _pin(asset)


def _matches_prefix(asset: Asset, digest: str) -> bool:
    return asset.sha256_prefix is None or digest.startswith(asset.sha256_prefix)


def status(
    asset_id: str | Asset, manifest: Mapping[str, Asset] | None = None, *, use_cache: bool = True
) -> AssetStatus:
    """Whether the asset is present and what its hash says: verified, unverified, missing, corrupt."""
    asset = get_asset(asset_id, manifest)
    path = assets_root() / asset.path
    expected = _expected(asset)
    if not path.is_file():
        state = AssetState.USER_SUPPLIED_MISSING if asset.user_supplied else AssetState.MISSING
        return AssetStatus(asset, state, path, expected, None)
    actual = _file_sha256(path, use_cache)
    if expected is not None:
        state = AssetState.VERIFIED if actual == expected else AssetState.CORRUPT
    elif not _matches_prefix(asset, actual):
        state = AssetState.CORRUPT
    else:
        state = AssetState.UNVERIFIED
    return AssetStatus(asset, state, path, expected, actual)


# --------------------------------------------------------------------------------------------- messages


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
    hint = f"place {asset.filename} ({_hash_words(asset, _expected(asset))}) at {path}"
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


# --------------------------------------------------------------------------------------------- require / fetch


def require(
    asset_id: str | Asset, manifest: Mapping[str, Asset] | None = None, *, download: bool = True,
    progress: Progress | None = None,
) -> Path:
    """The path of a verified local copy; downloads it when allowed; otherwise one clear FairbenchError line."""
    asset = get_asset(asset_id, manifest)
    st = status(asset)
    if st.state is AssetState.VERIFIED:
        return st.path
    if st.state is AssetState.UNVERIFIED:
        if asset.verify == "trust-on-first-use" and st.actual_sha256 is not None:
            _set_pin(asset, st.actual_sha256, f"local file {st.path}")
        return st.path
    if asset.user_supplied:
        raise FairbenchError(problem_message(st))
    if offline():
        raise FairbenchError(problem_message(st, " (FAIRBENCH_OFFLINE=1: not downloading)"))
    if not download:
        raise FairbenchError(problem_message(st, f" (or run `fairbench assets fetch {asset.id}`)"))
    return fetch(asset, progress, manifest=manifest)


def fetch(
    asset_id: str | Asset, progress: Progress | None = None, *, manifest: Mapping[str, Asset] | None = None,
    force: bool = False,
) -> Path:
    """Download the asset (each URL in turn) into its place, verified; a present verified copy is kept."""
    asset = get_asset(asset_id, manifest)
    target = assets_root() / asset.path
    if not asset.downloadable:
        raise FairbenchError(f"asset {asset.id!r} cannot be downloaded: {placement_hint(asset)}")
    if offline():
        raise FairbenchError(
            f"asset {asset.id!r}: FAIRBENCH_OFFLINE=1, not downloading; unset it or {placement_hint(asset)}"
        )
    if not force:
        st = status(asset)
        if st.state is AssetState.VERIFIED:
            return target
    failures: list[str] = []
    for url in asset.urls:
        try:
            digest = _download(asset, url, target, progress)
        except _DownloadError as exc:
            failures.append(f"{url}: {exc}")
            continue
        if asset.verify == "trust-on-first-use" and _pin(asset) is None:
            _set_pin(asset, digest, url)
        return target
    raise FairbenchError(
        f"asset {asset.id!r}: download failed ({'; '.join(failures)}); {placement_hint(asset)}"
    )


class _DownloadError(Exception):
    pass


def _download(asset: Asset, url: str, target: Path, progress: Progress | None) -> str:
    """Stream `url` to a temp file beside `target`, check length and hash, then rename; return the sha256."""
    expected = _expected(asset)
    request = urllib.request.Request(url, headers={"User-Agent": "fairbench-assets/1"})
    try:
        with atomic.atomic_path(target) as tmp:
            digest = hashlib.sha256()
            done = 0
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
                length_header = response.headers.get("Content-Length")
                declared = int(length_header) if length_header and length_header.isdigit() else None
                total = asset.size_bytes or declared
                if asset.size_bytes is not None and declared is not None and declared != asset.size_bytes:
                    raise _DownloadError(f"server announces {declared} bytes, expected {asset.size_bytes}")
                if progress is not None:
                    progress(0, total)
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    done += len(chunk)
                    if asset.size_bytes is not None and done > asset.size_bytes:
                        raise _DownloadError(f"more than the expected {asset.size_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                    if progress is not None:
                        progress(done, total)
            if declared is not None and done != declared:
                raise _DownloadError(f"connection closed after {done} of {declared} bytes")
            if asset.size_bytes is not None and done != asset.size_bytes:
                raise _DownloadError(f"got {done} bytes, expected {asset.size_bytes}")
            actual = digest.hexdigest()
            if expected is not None and actual != expected:
                raise _DownloadError(f"sha256 mismatch: got {actual}, expected {expected}; file refused")
            if expected is None and not _matches_prefix(asset, actual):
                raise _DownloadError(
                    f"sha256 mismatch: got {actual}, expected one starting {asset.sha256_prefix}; file refused"
                )
    except _DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        raise _DownloadError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise _DownloadError(str(exc.reason)) from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # timeouts, resets, IncompleteRead
        raise _DownloadError(f"{type(exc).__name__}: {exc}") from None
    # cache the verified hash so the next status() does not re-read the file
    st = target.stat()
    cache = _read_json(assets_root() / HASH_CACHE)
    cache[target.relative_to(assets_root()).as_posix()] = {
        "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": actual,
    }
    _write_json(assets_root() / HASH_CACHE, cache)
    return actual


# --------------------------------------------------------------------------------------------- tasks


def assets_for(names: Iterable[str], manifest: Mapping[str, Asset] | None = None) -> set[str]:
    """Asset ids for names that are asset ids themselves or appear in an asset's `used_by`."""
    assets = manifest if manifest is not None else load_manifest()
    wanted = set(names)
    return {a.id for a in assets.values() if a.id in wanted or wanted.intersection(a.used_by)}


def _names_in(value: Any) -> list[str]:
    """Strings named by a spec field: a str, a list of them, or objects/mappings with an `id` or `name`."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        for key in ("id", "name"):
            if isinstance(value.get(key), str):
                return [value[key]]
        return [k for k in value if isinstance(k, str)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [name for item in value for name in _names_in(item)]
    for attr in ("id", "name"):
        if isinstance(getattr(value, attr, None), str):
            return [getattr(value, attr)]
    if dataclasses.is_dataclass(value):
        return _names_in(dataclasses.asdict(value))  # type: ignore[arg-type]
    return []


_SPEC_FIELDS = ("assets", "feature_network", "metrics", "quality_metrics", "iqa")


def assets_needed_by_tasks(
    names: Iterable[str] = (), *, tasks: Iterable[Any] | None = None, manifest: Mapping[str, Asset] | None = None,
) -> set[str]:
    """Asset ids the installed tasks can use: the ids / feature-network / metric names their specs name
    (fields `assets`, `feature_network`, `metrics`, ... when present), plus `names`, mapped through `used_by`."""
    if tasks is None:
        from fairbench.tasks import list_tasks

        tasks = list_tasks()
    found = list(names)
    for spec in tasks:
        for attr in _SPEC_FIELDS:
            found.extend(_names_in(getattr(spec, attr, None)))
    return assets_for(found, manifest)
