"""Checks every writing command makes before any work: can its outputs be written, is its data root there.

A command that trains for an hour, or scores for ten minutes, and only then finds its output folder read-only
wastes the hour; checked first, the same problem is one `error:` line before anything starts. Nothing is
created here: a folder that does not exist yet is judged by the nearest one that does, which is where the
command will create it.
"""

from __future__ import annotations

import os
from pathlib import Path

from fairbench.errors import FairbenchError


def _blocker(folder: Path) -> str | None:
    """Why files cannot be created in `folder` (or in the folders that will be made inside it), or None."""
    here = folder
    while not os.path.lexists(here):  # lstat fails for 'file/out' too (ENOTDIR): climb to 'file'
        if here.parent == here:
            break
        here = here.parent
    if not here.is_dir():
        return f"{here} is a file, not a folder" if here.exists() else f"{here} is not a folder"
    if not os.access(here, os.W_OK | os.X_OK):
        return f"{here} is on a read-only file system" if _read_only(here) else f"no permission to write in {here}"
    return None


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def writable_folder(folder: Path, option: str) -> None:
    """Refuse an output folder that cannot be made or written into (read-only mount, no permission, a path
    through a file); `option` names where the path came from (`--out`, 'result folder')."""
    why = _blocker(Path(folder))
    if why is not None:
        raise FairbenchError(f"{option} {folder}: cannot write there: {why}")


def writable_file(path: Path, option: str) -> None:
    """Refuse an output file that cannot be written: its folder as for `writable_folder`, or a folder in its
    place. An existing read-only file is no obstacle: it is replaced by a rename, which only needs the folder."""
    path = Path(path)
    if path.is_dir():
        raise FairbenchError(f"{option} {path}: is a folder; give a file name")
    why = _blocker(path.parent)
    if why is not None:
        raise FairbenchError(f"{option} {path}: cannot write there: {why}")


def data_root_given(data_root: Path | None) -> None:
    """A --data-root that is not there: one line now, never a folder created by a download later."""
    if data_root is not None:
        from fairbench.paths import existing_data_root

        existing_data_root(data_root)
