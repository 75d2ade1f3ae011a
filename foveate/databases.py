"""Database locations, one way for every store foveate keeps (insight memory, calibration records).

A store is named by a SQLAlchemy URL (``postgresql+psycopg://me@db/foveate``) or a plain path, taken as a
SQLite file. ``check_sqlite_file`` refuses a file that exists but is not a SQLite database *before* SQLite
opens it, so that foveate never writes into somebody else's file.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from sqlalchemy import URL, make_url

from foveate.errors import FoveateError

__all__ = [
    "SQLITE_HEADER",
    "as_url",
    "check_sqlite_file",
    "describe",
    "quick_check",
    "read_only_connector",
    "sqlite_file",
]

SQLITE_HEADER = b"SQLite format 3\x00"


def as_url(target: str | Path | URL) -> URL:
    """A SQLAlchemy URL from a URL string, a ``URL``, or a plain path (taken as a SQLite file)."""
    if isinstance(target, URL):
        return target
    if isinstance(target, Path) or "://" not in str(target):
        # absolute, not resolved: a symlink loop must reach the checks that name it, not raise here
        return URL.create("sqlite", database=os.path.abspath(Path(target).expanduser()))
    return make_url(str(target))


def sqlite_file(url: URL) -> Path | None:
    """The file behind a SQLite URL, or ``None`` for other databases and in-memory SQLite."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    if str(url.database).startswith("file:"):
        return None
    return Path(str(url.database))


def describe(url: URL) -> str:
    """How to name a database in a message: its file, or its URL without the password."""
    path = sqlite_file(url)
    return str(path) if path is not None else url.render_as_string(hide_password=True)


def check_sqlite_file(path: Path, what: str, error: type[FoveateError]) -> None:
    """Refuse, with ``error`` naming ``what`` and the file, a path that is a directory or a file that is not
    a SQLite database; an empty or missing file passes (SQLite creates it)."""
    if path.is_dir():
        raise error(f"{what} {path} is a directory, not a SQLite file")
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as exc:  # a link made ahead of the file is fine (SQLite creates the target)
            if exc.errno == errno.ELOOP or not Path(os.path.realpath(path)).parent.is_dir():
                raise error(
                    f"{what} {path} is a symlink that leads nowhere (a loop, or no such folder)"
                ) from None
    if path.exists() and not path.is_file():
        raise error(f"{what} {path} is not a regular file (a FIFO, a device, a socket)")
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as fh:
        header = fh.read(len(SQLITE_HEADER))
    if header != SQLITE_HEADER:
        raise error(
            f"{what} {path} is not a SQLite database (it starts with {header[:8]!r}); foveate left it "
            "untouched: point foveate at another file, or move this one away"
        )


def read_only_connector(path: Path) -> Callable[[], sqlite3.Connection]:
    """Opens ``path`` for reading only (SQLAlchemy's ``creator``), for commands that only read.

    In a folder this process can write, the file is opened as usual (never created: ``mode=rw``) with
    ``PRAGMA query_only``: every write is refused, and SQLite still tidies its ``-wal`` and ``-shm`` files
    away on close (a ``mode=ro`` connection left them behind). SQLite reads a WAL database through a
    ``-shm`` file it must be able to create, so in a folder this process cannot write (a read-only mount,
    another user's folder) even ``mode=ro`` fails with "unable to open database file". On a read-only
    filesystem, where nothing can be writing, the file is then opened ``immutable``, unless a ``-wal`` or
    ``-journal`` holds commits the file lacks; elsewhere ``mode=ro`` (its failure is named by the caller).
    """
    path = path.resolve()  # the file SQLite opens, and the folder its -wal and -shm go in
    base = path.as_uri()
    if os.access(path.parent, os.W_OK):

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(f"{base}?mode=rw", uri=True, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            return conn

        return connect
    # immutable only where nothing can write (a read-only filesystem) and no journal holds commits the file
    # lacks: in another user's folder its owner may be writing, and immutable reads take no locks
    journals = [path.with_name(path.name + s) for s in ("-wal", "-journal")]
    frozen = bool(os.statvfs(path.parent).f_flag & os.ST_RDONLY)
    if frozen and not any(j.exists() and j.stat().st_size > 0 for j in journals):
        uri = f"{base}?mode=ro&immutable=1"
    else:
        uri = f"{base}?mode=ro"
    return lambda: sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)


def quick_check(path: Path, what: str, error: type[FoveateError]) -> None:
    """Refuse, before anything is written into it, a SQLite file that fails SQLite's own ``quick_check``
    (a damaged page, a broken index): writing into a damaged file can lose what it still holds. A missing
    or empty file passes. Read-only: the check itself never writes."""
    check_sqlite_file(path, what, error)
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as conn:
            rows = [str(row[0]) for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        rows = [str(exc)]
    if rows != ["ok"]:
        problem = " ".join(rows[0].replace("*** in database main ***", "").split())[:160]
        raise error(
            f"{what} {path} fails SQLite's integrity check ({problem}); foveate writes nothing into it: "
            "restore it from a copy, or point foveate at another file"
        )
