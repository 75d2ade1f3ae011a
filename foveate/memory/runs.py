"""Runs: the answered questions insights are drawn from, with their outcome once it is known.

A run log sees only its namespace's runs: another namespace's run is, to it, a run that is not there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from foveate.errors import InsightMemoryError
from foveate.memory.namespaces import memory_name
from foveate.memory.records import RunRecord, image_fingerprint
from foveate.memory.schema import DEFAULT_NAMESPACE, RunRow, utcnow
from foveate.memory.store import MemoryStore

__all__ = ["RunLog"]


class RunLog:
    """The runs of one namespace in a memory database."""

    def __init__(self, store: MemoryStore, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.store = store
        self.namespace = namespace
        self.name = memory_name(store.name, namespace)  # for messages

    def find(self, session: Session, run_id: int) -> RunRow | None:
        """The run with this id in this namespace, or ``None`` (also when another namespace has it)."""
        row = session.get(RunRow, run_id)
        return row if row is not None and row.namespace == self.namespace else None

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
        question_kind: str | None = None,
        experience: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Store one answered question; ``image`` (anything ``load_image`` takes) is fingerprinted.
        ``experience`` (JSON-ready) is what its search measured, recalled later by ``question_kind``."""
        if image is not None and image_sha256 is None:
            image_sha256 = image_fingerprint(image)
        row = RunRow(
            namespace=self.namespace,
            question=question,
            image_sha256=image_sha256,
            answer=answer,
            correct=correct,
            feedback=feedback,
            trace_summary=trace_summary,
            model_id=model_id,
            created_at=utcnow(),
            question_kind=question_kind[:255] if question_kind else None,
            experience=json.dumps(experience) if experience is not None else None,
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
            row = self.find(session, run_id)
            if row is None:
                raise InsightMemoryError(f"memory {self.name} has no run {run_id}")
            if correct is not None:
                row.correct = correct
            if feedback is not None:
                row.feedback = feedback
            session.flush()
            return RunRecord.from_row(row)

    def get_run(self, run_id: int) -> RunRecord | None:
        with self.store.reading() as session:
            row = self.find(session, run_id)
            return RunRecord.from_row(row) if row is not None else None

    def experiences(self, question_kind: str, *, limit: int = 200) -> list[RunRecord]:
        """The newest ``limit`` runs of this kind of question whose search experience and outcome are both
        known, newest first (what ``foveate.insights.search_prior`` turns into search priors)."""
        query = (
            select(RunRow)
            .where(
                RunRow.namespace == self.namespace,
                RunRow.question_kind == question_kind[:255],
                RunRow.experience.is_not(None),
                RunRow.correct.is_not(None),
            )
            .order_by(RunRow.id.desc())
            .limit(limit)
        )
        with self.store.reading() as session:
            return [RunRecord.from_row(row) for row in session.scalars(query)]

    def runs(self) -> Iterator[RunRecord]:
        """Every run of this namespace, oldest first."""
        query = select(RunRow).where(RunRow.namespace == self.namespace).order_by(RunRow.id)
        with self.store.reading() as session:
            for row in session.scalars(query.execution_options(yield_per=1000)):
                yield RunRecord.from_row(row)
