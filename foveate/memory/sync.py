"""The FAISS index as a cache of the memory database: opened, caught up, rebuilt, saved, re-embedded.

The database is the source of truth; the index beside it is caught up from the database on open and
before every search, and rebuilt from it when it is missing, stale or corrupt -- never the other way
round. ``watermark`` is the database revision every change up to which is in the index; each change
commits to the database first, then touches the index, then moves the watermark.

An index holds one namespace's insights (``foveate.memory.namespaces``): every query here selects that
namespace's rows, and an index file whose sidecar names another namespace is rebuilt, never used. The
watermark is a revision of the whole database (one counter orders every namespace's writes), so a change
in another namespace only moves it on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from foveate.errors import EmbedderMismatchError, IndexFileError
from foveate.memory.embeddings import TextEmbedder
from foveate.memory.index import IndexConfig, VectorIndex
from foveate.memory.index_files import file_lock, sidecar_path
from foveate.memory.namespaces import memory_name
from foveate.memory.records import vector_bytes, vectors_from_bytes
from foveate.memory.schema import DEFAULT_NAMESPACE, InsightRow
from foveate.memory.store import MemoryStore

log = logging.getLogger(__name__)

__all__ = ["IndexOpen", "IndexSync", "WriteStep"]

#: The moments of a write, in order, that ``on_write_step`` is told of: the rows are in the transaction but
#: not committed; committed, the index not yet changed; the index file written (when a write saves it).
WriteStep = Literal["before_commit", "committed", "index_written"]


@dataclass(frozen=True)
class IndexOpen:
    """How an open found the index file: ``built`` (there was none), ``loaded`` (it was current),
    ``caught_up`` (it was behind the database by ``applied`` changes, which were replayed) or ``rebuilt``
    (it was unusable: ``reason``). A crash leaves the file behind at worst, so recovery is a catch-up; a
    rebuild means the file itself could not be trusted."""

    how: Literal["built", "loaded", "caught_up", "rebuilt"]
    applied: int = 0
    reason: str | None = None


_CHUNK = 10_000


class IndexSync:
    """One process's index of a namespace of a memory database, kept in step with the database's revisions."""

    def __init__(
        self,
        store: MemoryStore,
        embedder: TextEmbedder,
        index_path: Path | None,
        index_config: IndexConfig,
        save_every: int,
        lock: threading.RLock,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        on_write_step: Callable[[WriteStep], None] | None = None,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.name = memory_name(store.name, namespace)  # for messages
        self.embedder = embedder
        self.index_path = index_path
        self.index_config = index_config
        self.save_every = save_every
        self._lock = lock
        self.unsaved = 0
        self.retry_on_close = False  # a save failed (a full disk): try once more on close
        self.watermark = 0  # every change up to this database revision is in the index
        self.index = VectorIndex(embedder.dim, index_config)
        self.on_write_step = on_write_step
        self.opened = IndexOpen("built")

    def step(self, name: WriteStep) -> None:
        """Tell ``on_write_step`` (a test's crash hook) that a write reached ``name``."""
        if self.on_write_step is not None:
            self.on_write_step(name)

    def flush(self) -> None:
        """Catch the index up with the database and write it (atomically) with its sidecar; a read-only
        memory keeps its index in this process only."""
        with self._lock:
            if self.index_path is None or self.store.read_only:
                self.unsaved = 0
                return
            with self.store.reading() as session:
                self.catch_up(session, self.store.revision(session))
            meta = {
                "revision": self.watermark,
                "embedding_model": self.embedder.name,
                "database": self.store.name,
                "namespace": self.namespace,
            }
            try:
                self.index.save(self.index_path, meta)
            except OSError as exc:
                # The file is a cache, written atomically: the one on disk (if any) stays whole, and the
                # next open catches it up or rebuilds it from the database. Nothing is lost; say so.
                log.warning(
                    "could not write memory index %s (%s); it will be caught up on the next open",
                    self.index_path,
                    exc,
                )
                self.unsaved, self.retry_on_close = 0, True  # not again on every add: once more on close
                return
            self.unsaved, self.retry_on_close = 0, False
            self.step("index_written")

    def changed(self, count: int = 1) -> None:
        self.unsaved += count
        if self.index_path is not None and self.unsaved >= self.save_every:
            self.flush()

    def open(self) -> VectorIndex:
        """Load the index file if it is sound, else rebuild; then catch up and verify against the database."""
        with self.store.reading() as session:
            revision = self.store.revision(session)
            index: VectorIndex | None = None
            rebuilt, found, reason = False, False, None
            if self.index_path is not None and self.index_path.exists():
                found = True
                try:
                    index, meta = VectorIndex.load(self.index_path, self.embedder.dim, self.index_config)
                    # a sidecar from before namespaces names none: that index is the default namespace's
                    held = meta.get("namespace", DEFAULT_NAMESPACE)
                    if held != self.namespace:
                        raise IndexFileError(f"it holds namespace {held!r}, not {self.namespace!r}")
                    if meta.get("embedding_model") != self.embedder.name:
                        raise IndexFileError(f"it was built with {meta.get('embedding_model')!r}")
                    covered = int(meta.get("revision", -1))
                    if not 0 <= covered <= revision:
                        raise IndexFileError(f"it covers revision {covered}, the database is at {revision}")
                    self.watermark = covered
                except IndexFileError as exc:
                    reason = str(exc)
                    log.warning(
                        "memory index %s is unusable (%s); rebuilding it from %s",
                        self.index_path,
                        exc,
                        self.name,
                    )
                    index = None
            if index is None:
                index, rebuilt = self.rebuild(session, revision), True
            self.index = index
            applied = self.catch_up(session, revision)
            live = self.live_count(session)
            if len(self.index) != live:
                reason = f"it holds {len(self.index)} insights, the database {live}"
                log.warning(
                    "memory index %s holds %d insights but %s has %d; rebuilding it from the database",
                    self.index_path,
                    len(self.index),
                    self.name,
                    live,
                )
                self.index, rebuilt = self.rebuild(session, revision), True
        if not found:
            self.opened = IndexOpen("built")
        elif reason is not None:
            self.opened = IndexOpen("rebuilt", reason=reason)
        else:
            self.opened = IndexOpen("caught_up", applied) if applied else IndexOpen("loaded")
        if rebuilt or applied:
            self.unsaved += max(1, applied)
            if self.index_path is not None:
                self.flush()
        return self.index

    def rebuild(self, session: Session, revision: int) -> VectorIndex:
        ids: list[np.ndarray] = []
        vectors: list[np.ndarray] = []
        query = (
            select(InsightRow.id, InsightRow.embedding)
            .where(self.mine, InsightRow.deleted.is_(False))
            .order_by(InsightRow.id)
            .execution_options(yield_per=_CHUNK)
        )
        for part in session.execute(query).partitions():
            ids.append(np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part)))
            vectors.append(vectors_from_bytes([r[1] for r in part], self.embedder.dim))
        all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        all_vectors = np.concatenate(vectors) if vectors else np.zeros((0, self.embedder.dim), np.float32)
        self.watermark = revision
        return VectorIndex.build(all_ids, all_vectors, self.embedder.dim, self.index_config)

    def rebuild_index(self) -> None:
        """Throw the index away and build it again from the database."""
        with self._lock:
            with self.store.reading() as session:
                self.index = self.rebuild(session, self.store.revision(session))
            self.changed(self.save_every)

    @property
    def mine(self) -> ColumnElement[bool]:
        """The condition that picks this namespace's insights."""
        return InsightRow.namespace == self.namespace

    def live_count(self, session: Session) -> int:
        return session.execute(
            select(func.count()).where(self.mine, InsightRow.deleted.is_(False))
        ).scalar_one()

    def drop(self, revision: int, *others: Path | None) -> None:
        """Empty the index and remove its file and sidecar, and those of ``others`` (the namespace's file
        beside the database, when this index keeps none or another): the namespace was deleted at
        ``revision``."""
        with self._lock:
            self.index = VectorIndex(self.embedder.dim, self.index_config)
            self.watermark = revision
            self.unsaved, self.retry_on_close = 0, False
            if self.store.read_only:
                return
            for path in {p for p in (self.index_path, *others) if p is not None}:
                if path.exists() or sidecar_path(path).exists():
                    with file_lock(path, exclusive=True):
                        path.unlink(missing_ok=True)
                        sidecar_path(path).unlink(missing_ok=True)

    def catch_up(self, session: Session, upto: int) -> int:
        """Apply every change with ``watermark < revision <= upto`` to the index; returns how many."""
        with self._lock:
            if upto <= self.watermark:
                return 0
            rows = session.execute(
                select(InsightRow.id, InsightRow.deleted, InsightRow.embedding, InsightRow.embedding_model)
                .where(self.mine, InsightRow.revision > self.watermark, InsightRow.revision <= upto)
                .order_by(InsightRow.id)
            ).all()
            foreign = {r[3] for r in rows if not r[1] and r[3] != self.embedder.name}
            if foreign:
                raise EmbedderMismatchError(
                    f"another process added insights to {self.name} embedded with {sorted(foreign)}, "
                    f"not {self.embedder.name}"
                )
            gone = np.array([r[0] for r in rows if r[1]], dtype=np.int64)
            live = [r for r in rows if not r[1]]
            self.index.remove(gone)
            self.index.upsert(
                np.array([r[0] for r in live], dtype=np.int64),
                vectors_from_bytes([r[2] for r in live], self.embedder.dim),
            )
            self.watermark = upto
            return len(rows)

    def sync(self) -> None:
        """Bring the index up to date with changes from other processes (cheap when there are none)."""
        with self._lock, self.store.reading() as session:
            self.catch_up(session, self.store.revision(session))

    def check_embedder(self, on_model_change: str) -> None:
        """Refuse (or, with ``"reembed"``, embed again) this namespace's insights another embedder made
        (other namespaces have indexes of their own, so they may keep another embedder)."""
        with self.store.reading() as session:
            stored = session.execute(
                select(InsightRow.embedding_model, InsightRow.dim, func.count())
                .where(self.mine, InsightRow.deleted.is_(False))
                .group_by(InsightRow.embedding_model, InsightRow.dim)
            ).all()
        other = [(m, d, n) for m, d, n in stored if (m, d) != (self.embedder.name, self.embedder.dim)]
        if not other:
            return
        if on_model_change != "reembed":
            found = ", ".join(f"{n} by {m} ({d}-d)" for m, d, n in other)
            raise EmbedderMismatchError(
                f"memory {self.name} holds insights embedded {found}, but the embedder in use is "
                f"{self.embedder.name} ({self.embedder.dim}-d): open it with that embedder, or with "
                "on_model_change='reembed' to embed them again"
            )
        self.reembed()

    def reembed(self, batch_size: int = 256) -> int:
        """Embed every live insight of this namespace again with the current embedder (one transaction);
        returns how many."""
        with self._lock, self.store.writing() as (session, revision):
            rows = session.scalars(select(InsightRow).where(self.mine, InsightRow.deleted.is_(False))).all()
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                vectors = self.embedder.embed([r.text for r in chunk])
                for row, vector in zip(chunk, vectors, strict=True):
                    row.embedding = vector_bytes(vector)
                    row.embedding_model = self.embedder.name
                    row.dim = self.embedder.dim
                    row.revision = revision
            log.warning(
                "memory %s: embedded %d insights again with %s",
                self.name,
                len(rows),
                self.embedder.name,
            )
            return len(rows)
