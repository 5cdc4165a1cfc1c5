"""Downloadable files (feature networks, IQA weights): one manifest, verified by sha256, fetched atomically.

The manifest (`manifest.yaml` here, shipped in the package; `FAIRBENCH_ASSET_MANIFEST` or `load_manifest(path)`
point elsewhere) lists each file once: URL, sha256, licence and where it lives under `$FAIRBENCH_HOME/assets/`.

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

One module per job: `manifest` (what the files are), `store` (the local copies and their hashes), `download`
(require and fetch). This module is their public face.
"""

from fairbench.assets.download import Progress, fetch, require
from fairbench.assets.manifest import (
    MANIFEST_ENV, Asset, assets_for, assets_needed_by_tasks, get_asset, load_manifest, manifest_location,
)
from fairbench.assets.store import (
    HASH_CACHE, PINS, AssetState, AssetStatus, asset_path, assets_root, placement_hint, problem_message, status,
)

__all__ = [
    "HASH_CACHE", "MANIFEST_ENV", "PINS", "Asset", "AssetState", "AssetStatus", "Progress",
    "asset_path", "assets_for", "assets_needed_by_tasks", "assets_root", "fetch", "get_asset", "load_manifest",
    "manifest_location", "placement_hint", "problem_message", "require", "status",
]
