"""Exclusive locks on run directories, so two fairbench processes never train into the same folder.

`run_lock(directory)` takes a non-blocking exclusive `flock` on `<directory>/.lock` and writes the holder's
pid into it. The kernel releases the lock when the holding file descriptor is closed, which also happens
when the process dies in any way (SIGKILL included): a stale `.lock` file left behind is harmless, because
the file's existence means nothing, only the lock on it. The file is never deleted, since unlinking a lock
file lets two processes lock two different inodes under the same name.

Locks are advisory and POSIX-only (`fcntl`); on a platform without it the lock is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from fairbench.errors import FairbenchError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


@contextlib.contextmanager
def run_lock(directory: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold `<directory>/.lock` for the duration of the block; a FairbenchError if another process holds it."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    if fcntl is None:  # pragma: no cover
        yield path
        return
    # O_RDWR without O_TRUNC: the holder's pid must survive until we own the lock.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FairbenchError(
                f"run directory {folder} is in use by another fairbench process (pid {_holder(fd)}); "
                "wait for it to finish or stop it, then rerun to resume"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (see the module docstring)


def _holder(fd: int) -> str:
    """The pid written by the holder, or 'unknown' if it has not written it yet."""
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def lock_holder(directory: str | os.PathLike[str]) -> int | None:
    """The pid holding `<directory>/.lock` now, or None (free, no lock file, or not knowable here).

    Read from Linux's /proc/locks rather than by trying the lock: a probe would hold it for an instant, and
    a run starting in that instant would be refused. A pid recycled since the holder died cannot be
    mistaken for it: the kernel lists only locks that are held.
    """
    try:
        info = (Path(directory) / LOCK_NAME).stat()
        table = Path("/proc/locks").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 6585 fe:00:5906447 0 EOF" ("->" marks a waiter, which holds nothing)
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[3] == "WRITE" and fields[5] == device:
            return int(fields[4]) if fields[4].isdigit() else None
    return None
