"""Opening the memory database: any SQLAlchemy URL, a SQLite file by default, migrated on open.

SQLite files are opened in WAL mode with a busy timeout, foreign keys on and ``synchronous=FULL``,
and every write transaction starts with ``BEGIN IMMEDIATE`` so that two processes writing at once
queue up instead of failing. A file that is not a SQLite database, or a database that holds some
other program's tables, is refused with an error naming it, and is never written to. ``read_only``
opens without writing (no WAL switch, no folder made; only a foveate memory of an older schema is migrated
first, where it can be, as reads always did): for the commands that only read, so that a memory on a
read-only mount or in another user's folder can still be listed.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, inspect, select, text, update
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from foveate.databases import as_url, check_sqlite_file, describe, read_only_connector, sqlite_file
from foveate.errors import InsightMemoryError, MemoryDatabaseError, MemoryWriteError
from foveate.memory.schema import MemoryState

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 30_000
# Any constant will do: it names the lock that serialises migrations on PostgreSQL.
_PG_MIGRATION_LOCK = 0x666F76656174


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything foveate stores is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver's own BEGIN handling is off: _on_begin decides
        cursor = dbapi_conn.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = FULL")
            # journal_mode=WAL is set once, by MemoryStore, after the file proved to be ours: it
            # is a property of the file, and setting it rewrites the header of someone else's file.
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("foveate_sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class MemoryStore:
    """The database side of the memory: an engine, migrated to the newest schema, and sessions on it."""

    def __init__(self, target: str | Path | URL, *, echo: bool = False, read_only: bool = False) -> None:
        self.url = as_url(target)
        self.path = sqlite_file(self.url)
        self.name = describe(self.url)
        self.read_only = read_only
        kwargs: dict[str, Any] = {"echo": echo}
        if self.url.get_backend_name() == "sqlite":
            if self.path is None:  # in-memory: one shared connection, or every session sees a new database
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                check_sqlite_file(self.path, "memory database", MemoryDatabaseError)
                if read_only:
                    kwargs["creator"] = read_only_connector(self.path)
                else:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine = create_engine(self.url, **kwargs)
        except Exception as exc:  # unknown dialect, missing driver
            raise MemoryDatabaseError(f"cannot open memory database {self.name}: {exc}") from exc
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._writer = self.engine.execution_options(foveate_sqlite_begin="IMMEDIATE")
        self._reads = sessionmaker(self.engine, expire_on_commit=False)
        self._writes = sessionmaker(self._writer, expire_on_commit=False)
        try:
            self._migrate()
        except MemoryDatabaseError:
            self.engine.dispose()
            raise
        except (DatabaseError, OperationalError) as exc:
            self.engine.dispose()
            hint = ""
            if self.path is not None and not read_only and not os.access(self.path.parent, os.W_OK):
                hint = f" (foveate cannot write in {self.path.parent}; commands that only read still can)"
            raise MemoryDatabaseError(
                f"cannot open memory database {self.name}: {exc.orig if exc.orig is not None else exc}{hint}"
            ) from exc

    # -- schema ---------------------------------------------------------------------------------

    def _enable_wal(self) -> None:
        """Switch the file to WAL, retrying while another opener holds a lock.

        The switch needs an exclusive lock, and SQLite answers "database is locked" at once, without
        waiting on the busy timeout, when waiting could deadlock (another process opening the same new
        file is in its migration transaction); so wait here, up to the same timeout.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        delay = 0.01
        while True:
            raw = self.engine.raw_connection()  # the driver runs it outside any transaction
            try:
                raw.driver_connection.execute("PRAGMA journal_mode = WAL")  # type: ignore[union-attr]
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                    raise
            finally:
                raw.close()
            time.sleep(delay)
            delay = min(0.5, delay * 2)

    def _migrate(self) -> None:
        """Bring the schema to the newest revision, under a lock so that concurrent openers queue."""
        from alembic import command
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        config = Config()
        config.set_main_option("script_location", str(resources.files("foveate.memory") / "migrations"))
        known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
        with self.engine.connect() as conn:  # look first, without writing anything
            self._check_ours(conn, known)
            if self.read_only:
                head = ScriptDirectory.from_config(config).get_current_head()
                if self._revisions(conn) == {head}:
                    return
        if self.read_only:  # older: migrate once where foveate may write (as reads always did), else say so
            self._migrate_for_reading(head)
            return
        if self.is_sqlite:
            self._enable_wal()
        with self._writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
            self._check_ours(conn, known)  # again, under the lock: another process may have been first
            config.attributes["connection"] = conn
            command.upgrade(config, "head")

    def _check_ours(self, conn: Connection, known: set[str]) -> None:
        """Refuse a database that holds other tables, or a schema revision this foveate does not know."""
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" in tables:
            unknown = self._revisions(conn) - known
            if unknown:
                raise MemoryDatabaseError(
                    f"memory database {self.name} has schema revision {', '.join(sorted(unknown))}, "
                    "which this foveate does not know (written by a newer foveate, or not a foveate "
                    "memory); it was left untouched"
                )
        elif tables:
            raise MemoryDatabaseError(
                f"{self.name} already holds other tables ({', '.join(sorted(tables)[:5])}) and is not a "
                "foveate memory; it was left untouched: give the memory its own database"
            )

    @staticmethod
    def _revisions(conn: Connection) -> set[str]:
        if "alembic_version" not in set(inspect(conn).get_table_names()):
            return set()
        return {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}

    def _migrate_for_reading(self, head: str | None) -> None:
        """A memory opened read-only whose schema is older than this foveate's: migrated by a writing open
        where that works (as the read commands always did after an upgrade); else refused, naming the way
        out. A database with no foveate schema at all is refused, never given one by a read."""
        with self.engine.connect() as conn:
            current = self._revisions(conn)
        if not current:
            raise MemoryDatabaseError(f"{self.name} holds no foveate memory (no schema); nothing was written")
        with suppress(MemoryDatabaseError):  # a folder foveate cannot write: said below
            MemoryStore(self.url).close()
        with self.engine.connect() as conn:
            current = self._revisions(conn)
        if current != {head}:
            raise MemoryDatabaseError(
                f"memory database {self.name} is at schema revision {', '.join(sorted(current))}, not this "
                f"foveate's {head}, and cannot be migrated here: open it once where foveate can write it"
            )

    # -- sessions -------------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A read transaction (a consistent snapshot on SQLite)."""
        with self._reads() as session, session.begin():
            yield session

    @contextmanager
    def writing(self) -> Iterator[tuple[Session, int]]:
        """A write transaction that has already taken the writers' lock and the next revision.

        The revision bump comes first, so that on SQLite (``BEGIN IMMEDIATE``) and PostgreSQL (row
        lock on ``memory_state``) two writers queue here, and everything read inside the block is
        current. Commits on leaving the block.
        """
        if self.read_only:
            raise InsightMemoryError(f"memory database {self.name} was opened read-only; nothing was written")
        try:
            with self._writes() as session, session.begin():
                revision = session.execute(
                    update(MemoryState)
                    .where(MemoryState.id == 1)
                    .values(revision=MemoryState.revision + 1)
                    .returning(MemoryState.revision)
                ).scalar_one()
                yield session, revision
        except OperationalError as exc:  # a full disk, a lost server: the transaction was rolled back
            raise MemoryWriteError(
                f"cannot write memory database {self.name}: {exc.orig if exc.orig is not None else exc}; "
                "this change was not stored, everything stored before is intact"
            ) from exc

    def revision(self, session: Session) -> int:
        return session.execute(select(MemoryState.revision).where(MemoryState.id == 1)).scalar_one()

    def close(self) -> None:
        self.engine.dispose()
