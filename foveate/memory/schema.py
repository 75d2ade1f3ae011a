"""The memory's tables, as SQLAlchemy 2.0 typed ORM classes.

The database is the source of truth; the FAISS index is a cache that can always be rebuilt from
the ``embedding`` column. Every change that matters to the index (a new insight, a new text, a
delete) stamps the row with the next value of ``memory_state.revision``, bumped in the same
transaction. Bumping that single row also serialises writers on every backend (SQLite's write
lock, PostgreSQL's row lock), so revisions are committed in order and an index that covers
revision ``r`` can be caught up by reading the rows with ``revision > r``.

Every run and insight belongs to a ``namespace`` (a user or project; ``"default"`` unless told), so that
one database can hold several memories that never see each other's rows (``foveate.memory.namespaces``).

Schema changes go through an Alembic migration in ``foveate/memory/migrations/versions``.
"""

from __future__ import annotations

import enum
from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# The namespace of every row written before namespaces existed, and of every memory not told otherwise.
DEFAULT_NAMESPACE = "default"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class InsightKind(str, enum.Enum):
    """What an insight teaches (ICAL's abstraction types, narrowed to question answering)."""

    PERCEPTION_LESSON = "perception_lesson"  # what to look at, and how (zoom, crop, count twice)
    TASK_RELATION = "task_relation"  # how this kind of question relates to others
    FAILURE = "failure"  # what went wrong, so as not to repeat it
    TIP = "tip"  # anything else worth knowing


class Base(DeclarativeBase):
    pass


class MemoryState(Base):
    """One row: the revision counter that orders every index-relevant change."""

    __tablename__ = "memory_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class RunRow(Base):
    """One answered question: what was asked, about which image, what came back, and how it went."""

    __tablename__ = "runs"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(
        String(128), nullable=False, default=DEFAULT_NAMESPACE, server_default=DEFAULT_NAMESPACE, index=True
    )
    question: Mapped[str] = mapped_column(Text, nullable=False)
    image_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    answer: Mapped[str | None] = mapped_column(Text)
    correct: Mapped[bool | None] = mapped_column(Boolean)
    feedback: Mapped[str | None] = mapped_column(Text)
    trace_summary: Mapped[str | None] = mapped_column(Text)
    model_id: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    # What the run's search measured (JSON; foveate.zoom.experience reads it) and the kind of question it
    # answered (its pattern: "what is the color of <object>"), by which experience is recalled.
    question_kind: Mapped[str | None] = mapped_column(String(255))
    experience: Mapped[str | None] = mapped_column(Text)

    insights: Mapped[list[InsightRow]] = relationship(back_populates="run", passive_deletes=True)


Index("ix_runs_question_kind", RunRow.namespace, RunRow.question_kind)


class InsightRow(Base):
    """One insight with its embedding; ``deleted`` rows stay (for the index to catch up) until purged."""

    __tablename__ = "insights"
    # AUTOINCREMENT: SQLite must never hand out an id again, or an old index could mistake a new
    # insight for a deleted one.
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(
        String(128), nullable=False, default=DEFAULT_NAMESPACE, server_default=DEFAULT_NAMESPACE, index=True
    )
    text: Mapped[str] = mapped_column(Text, nullable=False)
    kind: Mapped[InsightKind] = mapped_column(
        Enum(
            InsightKind,
            name="insight_kind",
            native_enum=False,
            create_constraint=True,
            length=32,
            values_callable=lambda kinds: [k.value for k in kinds],
        ),
        nullable=False,
    )
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    embedding_model: Mapped[str] = mapped_column(String(255), nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    embedding: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # float32, little-endian
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, default=utcnow)
    times_seen: Mapped[int] = mapped_column(Integer, nullable=False, default=1)  # near-duplicates merged
    times_used: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    times_helpful: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    deleted: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    revision: Mapped[int] = mapped_column(Integer, nullable=False, index=True)

    run: Mapped[RunRow | None] = relationship(back_populates="insights")
