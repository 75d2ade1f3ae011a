"""The memory index's files on disk: each written atomically (a temporary file renamed over it, the rename
made durable), an advisory lock beside the index so that a save and a load in two processes never
interleave, and the name of the JSON sidecar that vouches for the index file."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "file_lock", "sidecar_path"]


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def atomic_write(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` via a temporary file in the same folder; returns its SHA-256."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return hashlib.sha256(data).hexdigest()


@contextlib.contextmanager
def file_lock(path: Path, *, exclusive: bool) -> Iterator[None]:
    """An advisory lock beside the index, so that a save and a load in two processes do not interleave."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: saves are still atomic, just not serialised
        yield
        return
    lock = path.with_name(path.name + ".lock")
    if not exclusive and not os.access(path.parent, os.W_OK):
        # a folder this process cannot write (a read-only mount): nobody saving an index can be there, and
        # an existing lock file is opened for reading (flock works on it)
        if not lock.exists():
            yield
            return
        with open(lock, "rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
            yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
