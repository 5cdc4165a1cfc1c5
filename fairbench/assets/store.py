"""The local copies of assets: where they live, whether their hashes hold, and the one-line fix when not.

Hashes of verified files are cached by (size, mtime) in `.hashes.json` beside the assets; trust-on-first-use
pins live in `.pins.json`. Both are caches of facts any run can recompute, so a failed write only costs time.

`import_local` puts a user's own copy in place (`fairbench assets import`). A file with the published sha256 (or
a known byte-identical copy, `local_copies` with format `copy`) is simply the asset. A known copy in another
format is converted, and a `substitute` (other parameters, accepted only when asked for) is copied: neither can
have the published sha256, so each is recorded in `.imports.json` with the sha256 of the file written, and only
that file counts as verified. Results record that sha256, so they never pass for the published parameters.
"""

from __future__ import annotations

import enum
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fairbench import atomic
from fairbench.assets.manifest import SHA256, Asset, LocalCopy, get_asset
from fairbench.errors import FairbenchError
from fairbench.paths import fairbench_home

HASH_CACHE = ".hashes.json"
PINS = ".pins.json"
IMPORTS = ".imports.json"


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
    expected_sha256: str | None  # the manifest's hash or the pin (an import's own hash when `imported`)
    actual_sha256: str | None  # of the local file, when present
    imported: ImportRecord | None = None  # set when the file is a converted copy or a substitute

    @property
    def usable(self) -> bool:
        return self.state in (AssetState.VERIFIED, AssetState.UNVERIFIED)

    @property
    def label(self) -> str:
        if self.imported is not None and self.state is AssetState.VERIFIED:
            return self.imported.label
        return {
            AssetState.VERIFIED: "present",
            AssetState.UNVERIFIED: "present (unverified)",
            AssetState.MISSING: "missing",
            AssetState.CORRUPT: "corrupt",
            AssetState.USER_SUPPLIED_MISSING: "user-supplied, not present",
        }[self.state]


@dataclass(frozen=True)
class ImportRecord:
    """What `import_local` wrote where the published file could not be: its sha256 and where it came from."""

    sha256: str  # of the file written into the assets folder
    kind: Literal["converted", "substitute"]
    source: str  # the user's file, as given
    source_sha256: str
    format: str  # "copy" or the converter's name
    local_copy: str | None = None  # the manifest's `local_copies` name, for a known copy

    @property
    def label(self) -> str:
        if self.kind == "converted":
            return f"present (converted from {self.local_copy})"
        return "present (substitute, not the published file)"


@dataclass(frozen=True)
class ImportResult:
    asset: Asset
    path: Path
    sha256: str
    kind: Literal["published", "converted", "substitute"]
    source_sha256: str
    local_copy: LocalCopy | None = None


Converter = Callable[[Path, Path], None]  # (the user's file, the temp file to write the asset's format into)


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


def import_record(asset: Asset) -> ImportRecord | None:
    """The record of an imported converted copy or substitute, if one was made."""
    entry = _read_json(assets_root() / IMPORTS).get(asset.id)
    if not isinstance(entry, dict):
        return None
    try:
        record = ImportRecord(**entry)
    except TypeError:
        return None
    return record if SHA256.fullmatch(str(record.sha256)) else None


def _set_import_record(asset: Asset, record: ImportRecord | None) -> None:
    """Written strictly (unlike the caches): without its record an imported file would be refused later."""
    path = assets_root() / IMPORTS
    records = _read_json(path)
    if record is None:
        if asset.id not in records:
            return
        del records[asset.id]
    else:
        records[asset.id] = asdict(record)
    atomic.write_text(path, json.dumps(records, indent=1, sort_keys=True))


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
    record = import_record(asset)
    if record is not None and actual == record.sha256 and actual != expected:
        return AssetStatus(asset, AssetState.VERIFIED, path, record.sha256, actual, record)
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


def _copy(source: Path, dest: Path) -> None:
    shutil.copyfile(source, dest)


def import_local(
    asset_id: str | Asset,
    source: str | os.PathLike[str],
    *,
    substitute: bool = False,
    substitute_format: str = "copy",
    converters: Mapping[str, Converter] | None = None,
    check: Callable[[Path], None] | None = None,
    manifest: Mapping[str, Asset] | None = None,
) -> ImportResult:
    """Put the user's own copy of an asset in place, checked by sha256 (module doc); `check` vets the written file.

    The published file (or a known byte-identical copy) is the asset itself. A known copy in another format goes
    through `converters[format]`. Anything else is refused unless `substitute`, then written with
    `converters[substitute_format]` and recorded under its own sha256. Nothing reaches the asset's path unhashed."""
    asset = get_asset(asset_id, manifest)
    src = Path(source).expanduser()
    if asset.user_supplied:
        raise FairbenchError(f"asset {asset.id!r} is user-supplied: {placement_hint(asset)}")
    if not src.is_file():
        raise FairbenchError(f"cannot import {src}: no such file")
    digest = atomic.sha256_file(src)
    known = next((c for c in asset.local_copies if c.sha256 == digest), None)
    pin = pinned_sha256(asset) if asset.verify == "trust-on-first-use" else None
    published = (
        digest == asset.sha256
        or (known is not None and known.format == "copy")
        or (asset.verify == "trust-on-first-use" and asset.sha256_prefix is not None and digest == pin)
        or (asset.verify == "trust-on-first-use" and pin is None and asset.sha256_prefix is not None
            and matches_prefix(asset, digest))
    )
    converters = {"copy": _copy, **(converters or {})}
    kind: Literal["published", "converted", "substitute"]
    if published:
        kind, fmt = "published", "copy"
        if pin is not None and digest != pin:
            raise FairbenchError(
                f"cannot import {src} as {asset.id!r}: its sha256 {digest} differs from the copy pinned earlier "
                f"({pin}); delete the pin in {assets_root() / PINS} to accept another copy"
            )
    elif known is not None:
        kind, fmt = "converted", known.format
    elif substitute:
        kind, fmt = "substitute", substitute_format
    else:
        copies = ", ".join(f"{c.name} (sha256 {c.sha256})" for c in asset.local_copies) or "none listed"
        raise FairbenchError(
            f"cannot import {src} as {asset.id!r}: its sha256 {digest} is neither the published file's "
            f"({_hash_words(asset, expected_sha256(asset)).removeprefix('sha256 ')}) nor a known copy of its "
            f"parameters ({copies}); pass --substitute to use it anyway, recorded under its own sha256"
        )
    if fmt not in converters:
        raise FairbenchError(f"cannot import {src} as {asset.id!r}: no converter for format {fmt!r}")
    target = assets_root() / asset.path
    with atomic.atomic_path(target) as tmp:
        converters[fmt](src, tmp)
        if check is not None:
            try:
                check(tmp)
            except FairbenchError as exc:
                why = str(exc).removeprefix(f"{tmp}: ")
                raise FairbenchError(f"cannot import {src} as {asset.id!r}: {why}") from None
        written = atomic.sha256_file(tmp)
        if kind == "published":
            if written != digest:
                raise FairbenchError(f"copying {src} to {target} changed its bytes")
            _set_import_record(asset, None)
            if asset.verify == "trust-on-first-use" and pin is None:
                set_pin(asset, digest, f"imported from {src}")
        else:
            record_kind: Literal["converted", "substitute"] = "converted" if kind == "converted" else "substitute"
            _set_import_record(
                asset, ImportRecord(written, record_kind, str(src), digest, fmt, known.name if known else None)
            )
    remember_hash(target, written)
    return ImportResult(asset, target, written, kind, digest, known)
