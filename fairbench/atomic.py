"""Atomic file writes: a reader sees the old file or the whole new one, never half of either."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from fairbench.errors import FairbenchError


# What the place written to answers, not the code: a full disk, a quota, a read-only mount, no permission.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                          errno.ENOTDIR, errno.EISDIR})


class OutputError(FairbenchError):
    """A file that could not be written for a reason the user fixes (disk full, read-only, no permission)."""


def remedy(exc: OSError) -> str:
    """What the user does about an OSError of WRITE_ERRNOS."""
    return {
        errno.ENOSPC: "the disk is full: free some space, then rerun",
        errno.EDQUOT: "over the disk quota: free some space, then rerun",
        errno.EROFS: "read-only file system: choose another output folder",
    }.get(exc.errno or 0, "choose another output folder or fix its permissions")


def cannot_write(target: str | os.PathLike[str], exc: OSError) -> OutputError:
    """One line naming the file and what to do; the partial temp file is already gone when this is raised."""
    return OutputError(f"cannot write {target}: {exc.strerror or exc}; {remedy(exc)}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync and rename it over `path`.

    A write that fails because of where it goes (WRITE_ERRNOS) is an OutputError naming `path`: one line for
    the user, where a traceback would only restate that the disk is full."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise cannot_write(target, exc) from exc
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
        except OSError as exc:  # the caller's writes into tmp_path; other OSErrors (a URL's) are its own
            if exc.errno in WRITE_ERRNOS:
                raise cannot_write(target, exc) from exc
            raise
        try:
            with open(tmp_path, "rb") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; give the file ordinary permissions
            os.replace(tmp_path, target)
        except OSError as exc:
            raise cannot_write(target, exc) from exc
    finally:
        tmp_path.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_with(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], None]) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        writer(fh)


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
