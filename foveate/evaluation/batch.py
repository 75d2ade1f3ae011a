"""``foveate batch``: a user's question file through an agent, one answer line per question, resumable.

Answers go to a JSON Lines file as each question finishes (``ResultsFile``: written whole, synced), so a run
killed at any moment loses at most the questions in flight and ``resume`` answers only the rest: every
question ends up answered exactly once. A question that cannot be answered because of itself (an unreadable
image, a budget too small) is written with its ``error`` and not retried; one that failed because the
backend did (a server down, a timeout) is not written, so that a resume retries it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from foveate.agent import Answer
from foveate.errors import BackendError
from foveate.evaluation.datasets import BenchQuestion
from foveate.evaluation.pool import run_bounded
from foveate.evaluation.results_file import ResultsFile
from foveate.evaluation.workers import Answerers

__all__ = ["BatchAnswer", "BatchOutcome", "answer_file"]

Progress = Callable[[int, int], None]


class BatchAnswer(BaseModel):
    """One line of the answers file."""

    model_config = ConfigDict(frozen=True)
    id: str
    """The question's id (its ``id`` field, else ``line-N``)."""
    question: str
    """What was asked."""
    answer: str | None = None
    """The answer given; None when the workflow abstained, paused for a person, or failed."""
    option: str | None = None
    """The option the model chose, even when the gate withheld it."""
    confidence: float | None = None
    """Its probability (free text: the sequence probability)."""
    abstained: bool = False
    """Whether the gate withheld the answer."""
    reason: str = ""
    """Why it abstained."""
    status: str = "done"
    """``done``, ``waiting`` (paused for a person: resume the run) or ``incomplete``."""
    run_id: str | None = None
    """The run's id (``foveate run --resume`` with the same checkpoints)."""
    correct: bool | None = None
    """With a labelled question: whether the model's choice is the right answer."""
    total_tokens: int = 0
    """Tokens the question cost."""
    overruns: list[str] = Field(default_factory=list)
    """Calls that spent more than they held (a server reporting more than its bound)."""
    probes: int = 0
    """Yes/no probes the search asked."""
    latency_s: float = 0.0
    """Seconds from asking to the answer."""
    finished: float = 0.0
    """When it was answered (Unix seconds)."""
    error: str | None = None
    """Why the question could not be answered (then ``answer`` is None)."""


@dataclass
class BatchOutcome:
    """What a ``answer_file`` call did."""

    answered: int = 0
    """Questions answered (or failed for their own reasons) in this call."""
    skipped: int = 0
    """Questions already in the file (resume)."""
    retry: list[str] = field(default_factory=list)
    """Ids of questions that failed because the backend did: not written, a resume retries them."""
    wall_s: float = 0.0
    """Seconds this call took."""

    @property
    def questions_per_second(self) -> float:
        return self.answered / self.wall_s if self.wall_s > 0 else 0.0


def _line(q: BenchQuestion, got: Answer | BaseException) -> BatchAnswer:
    if isinstance(got, BaseException):
        return BatchAnswer(
            id=q.id, question=q.question, finished=time.time(), error=f"{type(got).__name__}: {got}"
        )
    chosen = got.option if q.options else got.text
    return BatchAnswer(
        id=q.id,
        question=q.question,
        answer=got.text,
        option=got.option,
        confidence=got.confidence,
        abstained=got.abstained,
        reason=got.reason,
        status=got.status,
        run_id=got.run_id,
        correct=q.is_right(chosen),
        total_tokens=got.tokens.total,
        overruns=got.overruns,
        probes=got.probes,
        latency_s=got.latency_s,
        finished=time.time(),
    )


def answer_file(
    questions: Sequence[BenchQuestion],
    answerers: Answerers,
    results: ResultsFile,
    *,
    done: set[str],
    label: str = "batch",
    concurrency: int = 1,
    progress: Progress | None = None,
) -> BatchOutcome:
    """Answer the questions not in ``done`` with ``answerers``' agent ``label``, ``concurrency`` at a time,
    each line written to ``results`` as it finishes."""
    todo = [q for q in questions if q.id not in done]
    outcome = BatchOutcome(skipped=len(questions) - len(todo))
    count = outcome.skipped
    if progress is not None:
        progress(count, len(questions))

    def ask(q: BenchQuestion) -> Answer:
        return answerers.ask(label, q)

    def finished(q: BenchQuestion, got: Answer | BaseException) -> None:
        nonlocal count
        count += 1
        if isinstance(got, (BackendError, OSError)) and not isinstance(got, FileNotFoundError):
            outcome.retry.append(q.id)  # the backend's fault, not the question's: retried on resume
        else:
            results.write(_line(q, got).model_dump(mode="json"))
            outcome.answered += 1
        if progress is not None:
            progress(count, len(questions))

    started = time.perf_counter()
    run_bounded(todo, ask, finished, concurrency=concurrency)
    outcome.wall_s = time.perf_counter() - started
    return outcome
