"""Users' files, checked before they are opened: only a regular file is read (a FIFO blocks the reader
forever, ``/dev/zero`` never ends), and a path that is empty, missing, a folder, a symlink loop or a symlink
to nothing is named as such, in one line, instead of surfacing as a traceback or a hang."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from foveate.errors import FoveateError

__all__ = ["output_file", "regular_file"]


def regular_file(path: str | os.PathLike[str], what: str, error: type[FoveateError] = FoveateError) -> Path:
    """``path`` as a ``Path`` when it names a regular file; else ``error`` saying what it is instead.
    ``what`` names the file in the message ("question file", "calibration file")."""
    if not str(path).strip():
        raise error(f"the {what} path is empty")
    file = Path(path).expanduser()
    try:
        info = file.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{what} is a symlink loop: {file}") from None
        if file.is_symlink():
            raise error(f"{what} is a symlink to nothing: {file} -> {os.readlink(file)}") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise error(f"{what} not found: {file}") from None
        raise error(f"cannot read {what} {file}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{what} is a folder: {file}")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} is not a regular file (a FIFO, a device, a socket): {file}")
    return file


def output_file(path: str | os.PathLike[str], what: str, error: type[FoveateError] = FoveateError) -> Path:
    """``path`` as a ``Path`` foveate may create or append to: not empty, and, when something is there
    already (or a symlink points nowhere), a regular file."""
    if not str(path).strip():
        raise error(f"the {what} path is empty")
    file = Path(path).expanduser()
    if file.exists() or file.is_symlink():
        return regular_file(file, what, error)
    return file
