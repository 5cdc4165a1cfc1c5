"""Decoded-array cache: a dataset part decoded once (tens of thousands of JPEGs take seconds) and kept as an
uncompressed `.npz` under `$FAIRBENCH_HOME/cache/sources/`, plus an in-process memo.

The file name carries a fingerprint of the files the part was decoded from (relative names, sizes and
modification times: a stat of each file, fast where hashing every byte of 60,000 files is not), so an edited
or replaced copy is decoded afresh. Inside, beside the arrays, is the content hash of the decoded part
(`fairbench.sources.base.content_sha256`), which results record. Written atomically; read with
`allow_pickle=False`, so a tampered cache file cannot run code.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from fairbench import atomic, paths
from fairbench.sources.base import RawPart, content_sha256

_MEMO: dict[tuple[str, str], tuple[RawPart, str]] = {}
_MEMO_MAX = 6


def fingerprint(files: Iterable[Path], root: Path) -> str:
    """sha256 over (relative name, size, mtime_ns) of each file, in the given order."""
    digest = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        digest.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_dir() -> Path:
    return paths.fairbench_home() / "cache" / "sources"


def cached_part(name: str, key: str, decode: Callable[[], RawPart]) -> tuple[RawPart, str]:
    """(part, content sha256) for cache entry `name`-`key`: from memory, from disk, or decoded now and stored."""
    memo_key = (name, key)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    path = cache_dir() / f"{name}-{key[:24]}.npz"
    loaded = _read(path)
    if loaded is None:
        part = decode()
        sha = content_sha256(part.images, part.labels)
        with atomic.atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, images=part.images, labels=part.labels, content_sha256=np.array(sha))
        loaded = (part, sha)
    if len(_MEMO) >= _MEMO_MAX:
        _MEMO.pop(next(iter(_MEMO)))
    _MEMO[memo_key] = loaded
    return loaded


def _read(path: Path) -> tuple[RawPart, str] | None:
    """The cached part, or None when absent or unreadable (then it is decoded again and rewritten)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels, sha = z["images"], z["labels"], str(z["content_sha256"])
    except (OSError, ValueError, KeyError):
        return None
    if images.dtype != np.uint8 or images.ndim != 4 or labels.dtype != np.int64 or len(labels) != len(images):
        return None
    if content_sha256(images, labels) != sha:  # a truncated or edited cache file: decode afresh
        return None
    return RawPart(images=images, labels=labels), sha
