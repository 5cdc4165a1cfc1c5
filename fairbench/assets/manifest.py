"""The asset manifest: what each downloadable file is (URL, sha256, licence, place), read strictly.

`manifest.yaml` beside this module ships with the package; `FAIRBENCH_ASSET_MANIFEST` or `load_manifest(path)`
point elsewhere. Which assets the installed tasks need is answered here too: it depends on the manifest alone.
"""

from __future__ import annotations

import dataclasses
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from fairbench.errors import FairbenchError
from fairbench.checked_dataclasses import from_dict

MANIFEST_ENV = "FAIRBENCH_ASSET_MANIFEST"
SHA256 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"[0-9a-f]+")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class LocalCopy:
    """A file a user may already have that holds the same parameters as an asset (`fairbench assets import`).

    `format: copy` means byte-identical to the asset; any other format names the converter that writes the
    asset's format from it (fairbench.metrics.iqa_weights.CONVERTERS). Its sha256 is checked before use."""

    name: str
    sha256: str
    format: str
    description: str
    source: str


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
    local_copies: list[LocalCopy] = field(default_factory=list)

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


def manifest_location() -> Path | None:
    env = os.environ.get(MANIFEST_ENV)
    return Path(env).expanduser() if env else None


def load_manifest(path: str | os.PathLike[str] | None = None) -> dict[str, Asset]:
    """Parse the manifest strictly: unknown keys, bad hashes, non-https URLs or duplicate ids are errors."""
    path = Path(path) if path is not None else manifest_location()
    if path is None:
        where = "fairbench/assets/manifest.yaml"
        # fairbench is a namespace package (no __init__.py), where importlib.resources.files() is unreliable
        text = (Path(__file__).resolve().parent / "manifest.yaml").read_text(encoding="utf-8")
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
    if a.sha256 is not None and not SHA256.fullmatch(a.sha256):
        raise fail("sha256 must be 64 lower-case hex digits")
    if a.sha256_prefix is not None and not (_HEX.fullmatch(a.sha256_prefix) and 8 <= len(a.sha256_prefix) < 64):
        raise fail("sha256_prefix must be 8 to 63 lower-case hex digits")
    if a.size_bytes is not None and a.size_bytes <= 0:
        raise fail("size_bytes must be positive")
    names = [c.name for c in a.local_copies]
    for c in a.local_copies:
        if not _ID.fullmatch(c.name) or names.count(c.name) > 1:
            raise fail(f"local copy name {c.name!r} must be a unique lower-case id")
        if not SHA256.fullmatch(c.sha256) or c.sha256 == a.sha256:
            raise fail(f"local copy {c.name!r}: sha256 must be 64 lower-case hex digits, not the asset's own")
        if not (c.format.strip() and c.description.strip() and c.source.strip()):
            raise fail(f"local copy {c.name!r}: format, description and source are required")
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
    names: Iterable[str] = (), *, tasks: Iterable[Any], manifest: Mapping[str, Asset] | None = None,
) -> set[str]:
    """Asset ids `tasks` (the installed ones: `fairbench.task_registry.list_tasks()`, which the caller passes, since
    tasks sit above assets) can use: the ids / feature-network / metric names their specs name (fields `assets`,
    `feature_network`, `metrics`, ... when present), plus `names`, mapped through `used_by`."""
    found = list(names)
    for spec in tasks:
        for attr in _SPEC_FIELDS:
            found.extend(_names_in(getattr(spec, attr, None)))
    return assets_for(found, manifest)
