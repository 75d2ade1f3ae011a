"""Reading insights back for a write or a search: the near-duplicate to merge into, the rows behind hits."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from foveate.memory.index import VectorIndex
from foveate.memory.records import Insight, InsightHit
from foveate.memory.schema import InsightKind, InsightRow

__all__ = ["hydrate", "near_duplicate"]


def near_duplicate(
    session: Session,
    index: VectorIndex,
    namespace: str,
    merge_threshold: float | None,
    vector: np.ndarray,
    kind: InsightKind,
    pending: list[tuple[InsightRow, np.ndarray]],
) -> tuple[InsightRow, float] | None:
    """The stored insight this one should merge into: same kind, cosine at least the threshold.

    Same kind only: a failure and a success lesson about one kind of question read alike to an
    embedding model ("... was right" / "... was wrong") but must not merge. Same namespace only: the
    index holds no other, but the row is checked all the same, since a merge would change another user's.
    """
    if merge_threshold is None:
        return None
    best: tuple[InsightRow, float] | None = None
    for row, other in pending:  # added earlier in this same batch, not in the index yet
        if row.kind != kind:
            continue
        similarity = float(np.dot(vector, other))
        if similarity >= merge_threshold and (best is None or similarity > best[1]):
            best = (row, similarity)
    scores, ids = index.search(vector[None, :], 8)  # the nearest few: the closest may be another kind
    for score, insight_id in zip(scores[0], ids[0], strict=True):
        if insight_id < 0 or score < merge_threshold:
            break
        if best is not None and score <= best[1]:
            break
        stored = session.get(InsightRow, int(insight_id))
        if stored is None or stored.deleted or stored.namespace != namespace:
            continue
        if stored.kind == kind:
            best = (stored, float(score))
            break
    return best


def hydrate(
    session: Session,
    scores: np.ndarray,
    ids: np.ndarray,
    namespace: str,
    exclude_run_id: int | None,
    kinds: set[InsightKind] | None,
    min_score: float | None,
) -> list[InsightHit]:
    """The live rows of this namespace behind the index's hits, with their scores, after the filters; an id
    that is not there (purged by another process) or another namespace's is passed over: the index holds only
    this namespace's, but a search must not show another user's insight even if that ever failed."""
    found = [(int(i), float(s)) for i, s in zip(ids, scores, strict=True) if i >= 0]
    if not found:
        return []
    rows = {
        r.id: r
        for r in session.scalars(
            select(InsightRow).where(
                InsightRow.id.in_([i for i, _ in found]),
                InsightRow.namespace == namespace,
                InsightRow.deleted.is_(False),
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
