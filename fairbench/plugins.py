"""Load method/architecture plugins through entry points, so the harness names no method itself."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

_loaded = False


def load_plugins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    found = list(entry_points(group="fairbench.plugins"))
    for ep in found:
        ep.load()
    if not found:  # a source checkout that was never installed: the reference methods still work
        for target in _checkout_plugins():
            importlib.import_module(target.partition(":")[0])


def _checkout_plugins() -> list[str]:
    """The `fairbench.plugins` entry points the source checkout's pyproject.toml declares (none elsewhere), so
    the harness names no plugin even when no installed metadata lists them."""
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return []
    return list(project.get("entry-points", {}).get("fairbench.plugins", {}).values())
