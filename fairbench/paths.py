"""Where fairbench keeps data and downloads, and whether it may use the network."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from fairbench.errors import FairbenchError


def fairbench_home() -> Path:
    return Path(os.environ.get("FAIRBENCH_HOME", Path.home() / ".cache" / "fairbench")).expanduser()


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--data-root beats FAIRBENCH_DATA beats the default under the fairbench home."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("FAIRBENCH_DATA")
    return Path(env).expanduser() if env else fairbench_home() / "data"


def existing_data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """`data_root(explicit)`, refused in one line when --data-root or FAIRBENCH_DATA names a folder that is not
    there: fairbench never creates a folder the user named, since a typo would silently fill a new folder with
    downloads. Only the default root under the fairbench home is created (by the first download)."""
    root = data_root(explicit)
    origin = "--data-root" if explicit is not None else "FAIRBENCH_DATA" if os.environ.get("FAIRBENCH_DATA") else None
    if origin is None or root.is_dir():
        return root
    state = "is a file, not a folder" if root.exists() else "does not exist"
    raise FairbenchError(
        f"data root {root} ({origin}) {state}; fairbench does not create it: create it, or point {origin} at "
        "the folder that holds your datasets"
    )


_DOWNLOADS_OFF = {"depth": 0}


def offline() -> bool:
    """FAIRBENCH_OFFLINE is set, or the caller is inside `no_downloads()`."""
    if _DOWNLOADS_OFF["depth"]:
        return True
    return os.environ.get("FAIRBENCH_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


@contextlib.contextmanager
def no_downloads() -> Iterator[None]:
    """Sources read what is on disk and never download within the block: for looking data up (its content
    hash for a result) where a missing dataset is an answer, not a reason to fetch 170 MB."""
    _DOWNLOADS_OFF["depth"] += 1
    try:
        yield
    finally:
        _DOWNLOADS_OFF["depth"] -= 1
