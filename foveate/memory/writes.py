"""Storing a batch of insights in a write transaction: each text merges into a near-duplicate of its
namespace (stored, or earlier in the same batch) or becomes a new row.

Kept apart from ``InsightMemory.add_many``, which keeps the order of work (embed, commit to the database,
then touch the index), so that the part deciding what each text becomes reads, and changes, on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy.orm import Session

from foveate.memory.embeddings import TextEmbedder
from foveate.memory.index import VectorIndex
from foveate.memory.lookup import near_duplicate
from foveate.memory.records import AddResult, Insight, kind_of, vector_bytes
from foveate.memory.schema import InsightKind, InsightRow, utcnow

__all__ = ["prepare", "store_batch"]


def prepare(
    texts: Sequence[str], kind: InsightKind | str | Sequence[InsightKind | str]
) -> tuple[list[str], list[InsightKind]]:
    """The texts stripped, with one kind each; ``ValueError`` for an empty text or an unknown kind."""
    stripped = [t.strip() for t in texts]
    if any(not t for t in stripped):
        raise ValueError("an insight needs some text")
    kinds = (
        [kind_of(kind)] * len(stripped)
        if isinstance(kind, (str, InsightKind))
        else [kind_of(k) for k in kind]
    )
    if len(kinds) != len(stripped):
        raise ValueError(f"{len(kinds)} kinds for {len(stripped)} texts")
    return stripped, kinds


def store_batch(
    session: Session,
    index: VectorIndex,
    *,
    namespace: str,
    merge_threshold: float | None,
    embedder: TextEmbedder,
    texts: Sequence[str],
    kinds: Sequence[InsightKind],
    vectors: np.ndarray,
    run_id: int | None,
    revision: int,
) -> tuple[list[AddResult], list[tuple[InsightRow, np.ndarray]]]:
    """What became of each text, and the new rows (flushed, so with ids) with their vectors for the index.

    ``index`` must be caught up to the revision before ``revision``: near-duplicates are looked up in it.
    """
    results: list[AddResult] = []
    new_rows: list[tuple[InsightRow, np.ndarray]] = []
    now = utcnow()
    for text, kind, vector in zip(texts, kinds, vectors, strict=True):
        match = near_duplicate(session, index, namespace, merge_threshold, vector, kind, new_rows)
        if match is not None:
            row, similarity = match
            row.times_seen += 1
            row.updated_at = now
            session.flush()
            results.append(AddResult(insight=Insight.from_row(row), merged=True, similarity=similarity))
            continue
        row = InsightRow(
            namespace=namespace,
            text=text,
            kind=kind,
            run_id=run_id,
            embedding_model=embedder.name,
            dim=embedder.dim,
            embedding=vector_bytes(vector),
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
    return results, new_rows
