"""Where fairbench keeps data and downloads, and whether it may use the network."""

from __future__ import annotations

import os
from pathlib import Path


def fairbench_home() -> Path:
    return Path(os.environ.get("FAIRBENCH_HOME", Path.home() / ".cache" / "fairbench")).expanduser()


def data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--data-root beats FAIRBENCH_DATA beats the default under the fairbench home."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get("FAIRBENCH_DATA")
    return Path(env).expanduser() if env else fairbench_home() / "data"


def offline() -> bool:
    return os.environ.get("FAIRBENCH_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
