"""Getting an asset: `require` (a verified local path, downloading when allowed) and `fetch` (the download).

A download streams into a temp file beside its target, hashing as it goes; a hash mismatch, a short read or a
dropped connection deletes the temp file, so the final path only ever holds a verified file.
"""

from __future__ import annotations

import hashlib
import http.client
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

from fairbench import atomic, netcheck
from fairbench.assets.manifest import Asset, get_asset
from fairbench.assets.store import (
    AssetState, assets_root, expected_sha256, matches_prefix, pinned_sha256, placement_hint, problem_message,
    remember_hash, set_pin, status,
)
from fairbench.errors import FairbenchError
from fairbench.paths import offline

CHUNK = 1 << 20
TIMEOUT_S = netcheck.READ_TIMEOUT_S

Progress = Callable[[int, "int | None"], None]  # (bytes done, bytes expected or None)


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
            set_pin(asset, st.actual_sha256, f"local file {st.path}")
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
    # Every host probed at once first: without a network this fails in seconds, each mirror tried once.
    answered, failures = netcheck.reachable(asset.urls)
    for url in answered:
        try:
            digest = _download(asset, url, target, progress)
        except _DownloadError as exc:
            failures.append(f"{url}: {exc}")
            continue
        if asset.verify == "trust-on-first-use" and pinned_sha256(asset) is None:
            set_pin(asset, digest, url)
        return target
    raise FairbenchError(
        f"asset {asset.id!r}: download failed ({'; '.join(failures)}); {placement_hint(asset)}"
    )


class _DownloadError(Exception):
    pass


def _download(asset: Asset, url: str, target: Path, progress: Progress | None) -> str:
    """Stream `url` to a temp file beside `target`, check length and hash, then rename; return the sha256."""
    expected = expected_sha256(asset)
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
            if expected is None and not matches_prefix(asset, actual):
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
    remember_hash(target, actual)
    return actual
