"""What the insight memory stores and returns, as pydantic models, and how vectors are kept in rows."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from foveate.memory.schema import DEFAULT_NAMESPACE, InsightKind, InsightRow, RunRow
from foveate.memory.store import aware

__all__ = [
    "AddResult",
    "Insight",
    "InsightHit",
    "RunRecord",
    "image_fingerprint",
    "kind_of",
    "vector_bytes",
    "vectors_from_bytes",
    "write_jsonl",
]


class Insight(BaseModel):
    """A stored insight (without its vector)."""

    model_config = ConfigDict(frozen=True)
    id: int
    namespace: str = DEFAULT_NAMESPACE
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
            namespace=row.namespace,
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
    namespace: str = DEFAULT_NAMESPACE
    question: str
    image_sha256: str | None
    answer: str | None
    correct: bool | None
    feedback: str | None
    trace_summary: str | None
    model_id: str
    created_at: datetime
    question_kind: str | None = None
    """The question's pattern ("what is the color of <object>"), by which experience is recalled."""
    experience: dict[str, Any] | None = None
    """What the run's search measured (``foveate.zoom.experience.SearchExperience``), when recorded."""

    @classmethod
    def from_row(cls, row: RunRow) -> RunRecord:
        return cls(
            id=row.id,
            namespace=row.namespace,
            question=row.question,
            image_sha256=row.image_sha256,
            answer=row.answer,
            correct=row.correct,
            feedback=row.feedback,
            trace_summary=row.trace_summary,
            model_id=row.model_id,
            created_at=aware(row.created_at),
            question_kind=row.question_kind,
            experience=json.loads(row.experience) if row.experience else None,
        )


def image_fingerprint(image: Any) -> str:
    """SHA-256 of an image's RGB pixels (and size): the same picture in PNG or JPEG-free re-saves matches.

    Accepts whatever ``foveate.imaging.images.load_image`` accepts.
    """
    from foveate.imaging.images import load_image

    img = load_image(image)
    digest = hashlib.sha256(f"{img.width}x{img.height}:RGB:".encode())
    digest.update(img.convert("RGB").tobytes())
    return digest.hexdigest()


def kind_of(kind: InsightKind | str) -> InsightKind:
    try:
        return InsightKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in InsightKind)
        raise ValueError(f"unknown insight kind {kind!r}: use one of {known}") from None


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vectors_from_bytes(blobs: Sequence[bytes], dim: int) -> np.ndarray:
    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(-1, dim).astype(np.float32)


def write_jsonl(records: Iterable[BaseModel], target: str | Path | IO[str]) -> int:
    """Write records as JSON Lines to a file (created or replaced) or an open text stream; returns how many.

    One object per line, non-ASCII kept as it is, so that an export reads well and greps well.
    """
    count = 0
    own = isinstance(target, (str, Path))
    fh: Any = open(target, "w", encoding="utf-8") if isinstance(target, (str, Path)) else target  # noqa: SIM115
    try:
        for record in records:
            fh.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False) + "\n")
            count += 1
    finally:
        if own:
            fh.close()
    return count
