"""``foveate eval``'s run: each benchmark question through the direct baseline and each compared workflow,
one line per question and workflow in ``results.jsonl``, resumable (``foveate.evaluation.results_file``).

Entries run one after another (direct first), each over all questions with ``concurrency`` in flight, so
each entry's questions per second is measured on its own. How questions run at once (threads, shared
forward passes, worker processes) depends on where the model runs: ``foveate.evaluation.workers``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from foveate.agent import Answer
from foveate.errors import FoveateError
from foveate.evaluation.datasets import BenchQuestion
from foveate.evaluation.pool import run_bounded
from foveate.evaluation.results_file import ResultsFile
from foveate.evaluation.workers import Answerers
from foveate.graphs.nodes import builtin_registry
from foveate.graphs.spec import WorkflowSpec
from foveate.graphs.workflow import resolve_workflow
from foveate.zoom import builtin_strategies

__all__ = ["EvalEntry", "EvalRecord", "eval_entries", "evaluate", "record_key"]

Progress = Callable[[str, int, int], None]


class EvalRecord(BaseModel):
    """One line of ``results.jsonl``: one question through one entry, with what it cost."""

    model_config = ConfigDict(frozen=True)
    question_id: str
    """The benchmark's id of the question."""
    entry: str
    """The workflow that answered (``direct``, a strategy's name, or a workflow's)."""
    split: str
    """The question's split (V*: attribute / spatial; HR-Bench: ``4K single`` ...)."""
    category: str | None = None
    """The benchmark's finer category."""
    truth: str | None = None
    """The right answer (None: unlabelled)."""
    choice: str | None = None
    """The option the model chose (or its free-text answer); None when the run failed."""
    correct: bool | None = None
    """Whether ``choice`` is right (None: unlabelled). A failed run is wrong."""
    confidence: float | None = None
    """The chosen option's probability (free text: the sequence probability)."""
    probes: int = 0
    """Yes/no probes the search asked."""
    forward_passes: int = 0
    """Batched model invocations."""
    visual_tokens: int = 0
    """Image tokens in all prompts of the question."""
    total_tokens: int = 0
    """All tokens: visual, text and generated."""
    latency_s: float = 0.0
    """Seconds from asking to the answer."""
    started: float = 0.0
    """When it was asked (Unix seconds)."""
    finished: float = 0.0
    """When it was answered (Unix seconds)."""
    session: str = ""
    """Which run of the command answered it (a resumed run is another session)."""
    answer_box: list[int] | None = None
    """The crop the answer was given from (None: the whole image)."""
    targets: int = 0
    """How many target boxes the benchmark gives."""
    grounded: bool | None = None
    """With target boxes: whether the answering crop held at least one target's centre."""
    error: str | None = None
    """Why the run failed, when it did."""


def result_key(entry: str, question_id: str) -> str:
    """What one finished question of one entry is known by in ``results.jsonl`` (resume skips it)."""
    return f"{entry}\t{question_id}"


def record_key(line: dict[str, Any]) -> str:
    return result_key(line["entry"], line["question_id"])


@dataclass(frozen=True)
class EvalEntry:
    """A compared workflow: its label in the report and its spec."""

    label: str
    spec: WorkflowSpec


def eval_entries(workflows: Sequence[str] = (), strategies: Sequence[str] = ()) -> list[EvalEntry]:
    """The direct baseline first, then one entry per zoom strategy (the built-in ``zoom`` workflow with its
    ``zoom`` node set to it) and per workflow (a built-in name or a YAML file); repeats are dropped."""
    registry = builtin_registry()
    known = builtin_strategies()
    out = [EvalEntry("direct", resolve_workflow("direct", registry))]
    for name in strategies:
        if name == "direct":
            continue
        if name not in known.names():
            raise FoveateError(f"no zoom strategy {name!r}; built-in: {', '.join(known.names())}")
        base = resolve_workflow("zoom", registry)
        nodes = {
            key: node.model_copy(update={"params": {**node.params, "strategy": name}})
            if node.uses == "zoom"
            else node
            for key, node in base.nodes.items()
        }
        spec = base.model_copy(update={"name": f"zoom-{name}", "nodes": nodes})
        out.append(EvalEntry(name, spec))
    for workflow in workflows:
        spec = resolve_workflow(workflow, registry)
        label = spec.name
        if label == "direct" and workflow == "direct":
            continue
        out.append(EvalEntry(label, spec))
    labels = [e.label for e in out]
    dupes = {label for label in labels if labels.count(label) > 1}
    if dupes:
        raise FoveateError(
            f"two compared entries are both named {sorted(dupes)[0]!r}; name each workflow once"
        )
    return out


def _record(
    q: BenchQuestion,
    entry: str,
    session: str,
    started: float,
    got: Answer | BaseException,
    letters: bool = False,
) -> EvalRecord:
    base: dict[str, Any] = {
        "question_id": q.id,
        "entry": entry,
        "split": q.split,
        "category": q.category,
        "truth": q.answer,
        "started": started,
        "finished": time.time(),
        "session": session,
        "targets": len(q.boxes),
    }
    if isinstance(got, BaseException):
        return EvalRecord(**base, correct=q.is_right(None), error=f"{type(got).__name__}: {got}")
    choice = q.option_for(got.option, letters=letters) if q.options else got.text
    return EvalRecord(
        **base,
        choice=choice,
        correct=q.is_right(choice),
        confidence=got.confidence,
        probes=got.probes,
        forward_passes=got.tokens.forward_passes,
        visual_tokens=got.tokens.visual_tokens,
        total_tokens=got.tokens.total,
        latency_s=got.latency_s,
        answer_box=got.answer_box,
        grounded=got.grounding.holds_any if got.grounding is not None else None,
    )


def evaluate(
    questions: Sequence[BenchQuestion],
    answerers: Answerers,
    results: ResultsFile,
    *,
    done: set[str],
    concurrency: int = 1,
    progress: Progress | None = None,
) -> int:
    """Answer every question not in ``done`` with each of ``answerers``' agents (in order), writing each
    answer to ``results`` as it finishes; returns how many were answered now."""
    session = uuid.uuid4().hex[:8]
    answered = 0
    for label in answerers.agents:
        todo = [q for q in questions if result_key(label, q.id) not in done]
        count = len(questions) - len(todo)
        if progress is not None:
            progress(label, count, len(questions))

        def ask(q: BenchQuestion, label: str = label) -> tuple[float, Answer]:
            started = time.time()
            return started, answerers.ask(label, q, boxes=True)

        def finished(q: BenchQuestion, got: tuple[float, Answer] | BaseException, label: str = label) -> None:
            nonlocal count, answered
            started, answer = (time.time(), got) if isinstance(got, BaseException) else got
            record = _record(q, label, session, started, answer, answerers.letters)
            results.write(record.model_dump(mode="json"))
            count += 1
            answered += 1
            if progress is not None:
                progress(label, count, len(questions))

        run_bounded(todo, ask, finished, concurrency=concurrency)
    return answered
