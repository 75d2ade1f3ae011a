"""``Agent``: the small public surface. One object holds the model, the workflow, memory and the gate.

    import foveate
    agent = foveate.Agent.from_defaults()            # embedded tiny VLM, memory in ~/.foveate, workflow full
    answer = agent.ask("What is the color of the star?", image="scene.png",
                       options=["red", "green", "blue", "yellow"])
    answer.text, answer.confidence, answer.abstained, answer.reason, answer.tokens
    agent.feedback(answer.run_id, correct=False, answer="blue")   # feeds memory and the drift monitor

With your own model: ``Agent(vlm=TransformersVLM("Qwen/Qwen2.5-VL-7B-Instruct"), workflow="zoom",
budget=TokenBudget(max_total_tokens=40_000), memory="postgresql://...")``. ``Agent.from_defaults`` builds
everything from ``foveate.settings`` (flags > ``FOVEATE_*`` > ``~/.foveate/config.toml``), as every
``foveate`` command does.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver
from pydantic import BaseModel, ConfigDict, Field

from foveate.agent_args import check_agent_args, check_questions, listable, open_memory
from foveate.agent_args import truth_boxes as checked_boxes
from foveate.conformal import ConformalCalibration, CoverageMonitor, SelectiveCalibration
from foveate.conformal.answer_gate import AnswerGate, GateKey
from foveate.conformal.matching import matches
from foveate.conformal.procedure import check_gate, find_gate
from foveate.conformal.shipped import shipped_gate
from foveate.errors import FoveateError
from foveate.graphs.gate_key import gate_key
from foveate.graphs.nodes import trajectory_from_state
from foveate.graphs.registry import Registry
from foveate.graphs.services import Services
from foveate.graphs.spec import WorkflowSpec
from foveate.graphs.state import MAX_OPTIONS, RunInput, RunOutput, model_choice
from foveate.graphs.workflow import NodeEvent, SearchProgress, Workflow, open_checkpointer
from foveate.imaging.grounding import Grounding, grounding
from foveate.insights import extract_insights
from foveate.memory import InsightMemory
from foveate.settings import FoveateSettings, load_settings
from foveate.vlm.base import VLM
from foveate.vlm.budget import TokenBudget, TokenUsage
from foveate.vlm.loading import load_vlm
from foveate.zoom import StrategyRegistry, builtin_strategies

__all__ = ["Agent", "Answer"]

log = logging.getLogger(__name__)


class Answer(BaseModel):
    """What ``Agent.ask`` returns: the answer, how sure, why it abstained, what it looked at and cost."""

    model_config = ConfigDict(frozen=True)
    run_id: str
    question: str
    text: str | None  # the answer given (None when it abstained or is waiting for a person)
    option: str | None  # the option the model chose, even when the gate withheld it
    confidence: float | None  # that option's probability; a free-text answer's sequence probability
    options: list[str] = Field(default_factory=list)
    option_scores: list[float] = Field(default_factory=list)
    prediction_set: list[str] = Field(default_factory=list)
    abstained: bool = False
    reason: str = ""
    status: Literal["done", "waiting", "incomplete"] = "done"
    pending: dict[str, Any] | None = None
    crops: list[list[int]] = Field(default_factory=list)
    answer_box: list[int] | None = None  # the crop the answer was given from (None: the whole image)
    grounding: Grounding | None = None  # with ``truth_boxes``: whether that crop held the targets
    insights: list[dict[str, Any]] = Field(default_factory=list)
    trace: list[str] = Field(default_factory=list)  # "node: message", in order
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    overruns: list[str] = Field(default_factory=list)  # calls that spent more than they held: see budget
    probes: int = 0
    latency_s: float = 0.0
    workflow: str = ""
    model_id: str = ""

    @classmethod
    def from_output(cls, out: RunOutput, *, latency_s: float, workflow: str, model_id: str) -> Answer:
        return cls(
            run_id=out.run_id,
            question=out.question,
            text=out.answer if out.status == "done" else None,
            option=out.model_choice,
            confidence=max(out.option_scores) if out.option_scores else out.answer_confidence,
            options=out.options,
            option_scores=out.option_scores,
            prediction_set=out.prediction_set,
            abstained=out.abstained,
            reason=out.abstain_reason,
            status=out.status,
            pending=out.pending,
            crops=out.crops,
            answer_box=out.answer_box,
            insights=out.insights,
            trace=[f"{m.get('node', '')}: {m.get('text', '')}" for m in out.messages],
            tokens=out.usage,
            overruns=out.overruns,
            probes=out.probes,
            latency_s=latency_s,
            workflow=workflow,
            model_id=model_id,
        )


class Agent:
    """A VLM, a workflow, an insight memory and an abstention gate, behind ``ask``.

    ``memory``: an ``InsightMemory``, a SQLite path or SQLAlchemy URL (opened in ``namespace``: a user's or
    project's own insights and runs, "default" when None), or None (no recall, no remember).
    ``checkpoints``: where runs are checkpointed (SQLite path or PostgreSQL URL; None: in memory), so
    that ``resume`` works across processes. ``calibration``: the abstention gate (an ``AnswerGate`` from
    ``foveate calibrate``, refused when it was made for another model, workflow or budget unless
    ``allow_calibration_mismatch``; or a single conformal calibration); None answers without a guarantee.
    ``adaptive``: with a CRC gate, feedback that reveals drift switches on adaptive conformal inference.
    ``coalesce``: share forward passes between concurrent questions (``aask`` / ``ask_many``).
    ``registry``: node types and conditions for a workflow that uses your own
    (``builtin_registry().copy()`` plus yours); ``strategies``: zoom strategies for its ``zoom`` nodes
    (``builtin_strategies()`` plus yours). ``max_options``: most options a question may have.
    """

    def __init__(
        self,
        vlm: VLM,
        *,
        workflow: str | Path | WorkflowSpec = "full",
        budget: TokenBudget | None = None,
        memory: InsightMemory | str | Path | None = None,
        namespace: str | None = None,
        calibration: AnswerGate | ConformalCalibration | SelectiveCalibration | None = None,
        allow_calibration_mismatch: bool = False,
        adaptive: bool = False,
        checkpoints: str | Path | BaseCheckpointSaver[Any] | None = None,
        reasoner: VLM | None = None,
        coalesce: bool = False,
        registry: Registry | None = None,
        strategies: StrategyRegistry | None = None,
        max_options: int = MAX_OPTIONS,
    ) -> None:
        check_agent_args(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        self._stack = ExitStack()
        self.max_options = max_options
        self.vlm = vlm
        self.budget = budget or TokenBudget()
        if coalesce:
            from foveate.vlm.batching import CoalescingVLM

            vlm = self._stack.enter_context(CoalescingVLM(vlm))
        self.memory, opened = open_memory(memory, namespace)
        if opened and self.memory is not None:
            self._stack.callback(self.memory.close)
        saver = (
            checkpoints
            if isinstance(checkpoints, BaseCheckpointSaver)
            else self._stack.enter_context(open_checkpointer(checkpoints))
        )
        self.services = Services(
            vlm=vlm,
            reasoner=reasoner,
            memory=self.memory,
            strategies=strategies if strategies is not None else builtin_strategies(),
        )
        self.workflow = Workflow(workflow, self.services, checkpointer=saver, registry=registry)
        self.adaptive = adaptive
        self.calibration: AnswerGate | ConformalCalibration | SelectiveCalibration | None = None
        self.monitor: CoverageMonitor | None = None
        self.set_calibration(calibration, allow_mismatch=allow_calibration_mismatch)
        self._started: dict[str, float] = {}  # stream() start times, for answer()'s latency
        self._judged: set[str] = set()  # runs whose outcome feedback already gave (monitor counted once)

    @classmethod
    def from_defaults(cls, *, settings: FoveateSettings | None = None, **overrides: Any) -> Agent:
        """An agent built from ``settings`` (default: ``load_settings()``: ``FOVEATE_*`` variables, then
        ``~/.foveate/config.toml``, then the defaults): the model or server (the embedded tiny VLM when
        neither is set), the workflow (``full``), the budgets, the insight memory (``~/.foveate/memory.db``),
        the checkpoints (``~/.foveate/runs.db``) and, when ``alpha`` is set, the newest stored calibration of
        that model, workflow and budget (``calibration_db``), else, with ``default_gate``, the gate the model
        folder ships for this workflow (the embedded tiny VLM ships one for each built-in workflow at
        alpha 0.1). ``overrides`` are ``Agent``'s own keyword arguments (``vlm=``,
        ``memory=``, ``checkpoints=None``, ...) and win over the settings."""
        settings = settings or load_settings()
        vlm = overrides.pop("vlm", None) or load_vlm(
            settings.model, settings.endpoint, family=settings.family, **settings.backend_options()
        )
        overrides.setdefault("workflow", settings.workflow)
        overrides.setdefault("max_options", settings.max_options)
        overrides.setdefault("memory", settings.memory_db)
        if not isinstance(overrides["memory"], InsightMemory):  # one opened already has its namespace
            overrides.setdefault("namespace", settings.namespace)
        overrides.setdefault("checkpoints", settings.checkpoints)
        overrides.setdefault(
            "budget",
            TokenBudget(
                max_total_tokens=settings.max_total_tokens,
                max_visual_tokens_per_image=settings.max_visual_tokens,
            ),
        )
        gated = "calibration" in overrides
        agent = cls(vlm, **overrides)
        if gated:
            return agent
        try:
            if settings.alpha is not None:
                agent.set_calibration(
                    find_gate(
                        settings.calibration_db,
                        agent.gate_key,
                        settings.alpha,
                        settings.method,
                        allow_mismatch=settings.allow_calibration_mismatch,
                    )
                )
            elif settings.default_gate:
                agent.set_calibration(shipped_gate(vlm.model_id, agent.gate_key, settings.method))
        except BaseException:
            agent.close()
            raise
        return agent

    def set_calibration(
        self,
        calibration: AnswerGate | ConformalCalibration | SelectiveCalibration | None,
        *,
        allow_mismatch: bool = False,
        origin: str = "the calibration given",
    ) -> None:
        """Gate answers with ``calibration`` from now on (None: answer without a guarantee). An ``AnswerGate``
        made for another model, workflow, strategy or budget is refused (``CalibrationMismatchError``
        naming each difference) unless ``allow_mismatch``."""
        if isinstance(calibration, AnswerGate) and calibration.key is not None:
            calibration = check_gate(calibration, self.gate_key, origin=origin, allow_mismatch=allow_mismatch)
        self.calibration = calibration
        self.services.calibration = calibration
        self.monitor = CoverageMonitor(calibration.alpha) if calibration is not None else None
        if self.adaptive and isinstance(calibration, AnswerGate):
            self.monitor = calibration.adaptive_monitor()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @functools.cached_property
    def gate_key(self) -> GateKey:
        """What this agent's answers are (model, workflow, strategies, budget): a gate must be made for it.
        Computed when first needed: it hashes the model's weights (seconds for a multi-GB model)."""
        return gate_key(self.vlm, self.workflow.spec, self.budget)

    @property
    def model_id(self) -> str:
        return self.vlm.model_id

    # ------------------------------------------------------------------ asking
    def _input(
        self,
        question: str,
        image: Any,
        options: Sequence[str] | None,
        budget: TokenBudget | None,
        category: str | None = None,
    ) -> RunInput:
        if image is None:
            raise FoveateError("a question needs an image: ask(question, image=PATH_OR_PIL_IMAGE)")
        return RunInput.checked(
            max_options=self.max_options,
            question=question,
            image=image,
            options=list(options) if listable(options) else ([] if options is None else options),
            budget=budget or self.budget,
            category=category,
        )

    def _answer(self, out: RunOutput, started: float) -> Answer:
        return Answer.from_output(
            out,
            latency_s=time.perf_counter() - started,
            workflow=self.workflow.spec.name,
            model_id=self.model_id,
        )

    def ask(
        self,
        question: str,
        image: Any = None,
        options: Sequence[str] | None = None,
        *,
        budget: TokenBudget | None = None,
        run_id: str | None = None,
        truth_boxes: Sequence[Sequence[int]] | None = None,
        category: str | None = None,
    ) -> Answer:
        """Answer one question (``options``: scored multiple choice; else free text).

        ``category``: the question's category, for a gate calibrated per category (``foveate calibrate
        --by-category``); without one such a gate decides by its marginal calibration. A ``budget`` other
        than the agent's gives answers the gate was not calibrated on (its guarantee is for the agent's).

        ``truth_boxes``: where the objects the question is about really are (a benchmark's or your labelled
        boxes, ``(x0, y0, x1, y1)`` in image pixels); the answer then says whether the crop it was given
        from held them (``Answer.grounding``). The workflow never sees them."""
        started = time.perf_counter()
        boxes = checked_boxes(truth_boxes) if truth_boxes is not None else None  # before, not after, the run
        gate = self.calibration
        if budget is not None and budget != self.budget and isinstance(gate, AnswerGate) and gate.key:
            log.warning("this question's budget is not the one the gate was calibrated for: no guarantee")
        out = self.workflow.run(self._input(question, image, options, budget, category), run_id=run_id)
        answer = self._answer(out, started)
        if boxes is not None:
            box = answer.answer_box
            crop = (box[0], box[1], box[2], box[3]) if box else None
            answer = answer.model_copy(update={"grounding": grounding(crop, boxes)})
        return answer

    def stream(
        self, question: str, image: Any = None, options: Sequence[str] | None = None, **kw: Any
    ) -> Iterator[NodeEvent]:
        """Run and yield each node's event as it finishes (progress display); then ``answer(run_id)``.
        ``run_id=`` names the run (a caller prints it before any model work); ``budget=`` as in ``ask``;
        ``watch=`` is told each probe of a zoom search (a ``SearchProgress``) as it happens."""
        started = time.perf_counter()
        asked = self._input(question, image, options, kw.get("budget"))
        for event in self.workflow.stream(asked, run_id=kw.get("run_id"), watch=kw.get("watch")):
            self._started.setdefault(event.run_id, started)
            yield event

    def resume_stream(
        self, run_id: str, *, watch: Callable[[SearchProgress], None] | None = None
    ) -> Iterator[NodeEvent]:
        """Continue a run that stopped part way (a crash, a kill), yielding each node as it finishes (and
        telling ``watch`` each probe); then ``answer(run_id)``."""
        started = time.perf_counter()
        for event in self.workflow.stream(None, run_id=run_id, watch=watch):
            self._started.setdefault(event.run_id, started)
            yield event

    def answer(self, run_id: str) -> Answer:
        """The answer of a run (streamed, resumed, or from another process with the same checkpoints);
        its latency counts from the start of a ``stream`` in this process, else it is 0."""
        return self._answer(self.workflow.output(run_id), self._started.pop(run_id, time.perf_counter()))

    async def aask(
        self, question: str, image: Any = None, options: Sequence[str] | None = None, **kw: Any
    ) -> Answer:
        """``ask`` for asyncio callers; many ``aask`` at once run concurrently (use ``coalesce=True``)."""
        return await asyncio.to_thread(self.ask, question, image, options, **kw)

    def ask_many(
        self, questions: Sequence[tuple[str, Any, Sequence[str] | None]], *, max_concurrency: int = 8
    ) -> list[Answer]:
        """Several ``(question, image, options)`` at once."""
        started = time.perf_counter()
        runs = [
            self._input(q, img, opts, None) for q, img, opts in check_questions(questions, max_concurrency)
        ]
        return [
            self._answer(out, started) for out in self.workflow.batch(runs, max_concurrency=max_concurrency)
        ]

    def resume(self, run_id: str, human: dict[str, Any] | str | None = None) -> Answer:
        """Continue a run: after a crash, or with a person's reply when it paused to ask one."""
        started = time.perf_counter()
        return self._answer(self.workflow.resume(run_id, human), started)

    # ------------------------------------------------------------------ feedback
    def feedback(
        self, run_id: str, *, correct: bool | None = None, answer: str | None = None, note: str | None = None
    ) -> None:
        """Say how a run went: ``correct``, or the right ``answer`` (then correctness follows).

        The run is recorded (or updated) in the insight memory, its lessons are written now that the
        outcome is known, recalled insights are counted as helpful or not, and the coverage monitor
        learns whether the abstention gate's guarantee still holds.
        """
        state = self.workflow.state(run_id, own=True)
        scores = state.get("option_scores") or []
        chosen = model_choice(state)
        if correct is None and answer is not None:
            correct = chosen == answer
        if correct is None and note is None:
            raise FoveateError("feedback needs correct=True/False, the right answer, or a note")
        memory_run = state.get("run_id")
        before = (
            self.memory.get_run(memory_run) if self.memory is not None and memory_run is not None else None
        )
        # the outcome was known already (ground truth in the run, earlier feedback): only the record changes
        known = (before is not None and before.correct is not None) or run_id in self._judged
        if self.monitor is not None and correct is not None and scores and not known:
            self._update_monitor(state, answer if answer is not None else (chosen if correct else None))
        if correct is not None:
            self._judged.add(run_id)
        if self.memory is None:
            return
        image = self.services.image(state)
        trajectory = trajectory_from_state(state, image.size, self.model_id).model_copy(
            update={"correct": correct, "feedback": note}
        )
        used = [int(i["id"]) for i in state.get("insights") or []]
        if memory_run is None:
            memory_run = self.memory.record_run(
                trajectory.question,
                trajectory.answer,
                image_sha256=state.get("image_sha256"),
                correct=correct,
                feedback=note,
                trace_summary=trajectory.summary(),
                model_id=self.model_id,
            ).id
            # keep the link in the run's own state, so later feedback (any process) updates this record
            self.workflow.graph.update_state(self.workflow.config(run_id), {"run_id": memory_run})
            if used:  # the workflow did not remember, so their use was never counted
                self.memory.mark_used(used, helpful=bool(correct))
        else:
            self.memory.set_feedback(memory_run, correct=correct, feedback=note)
            if used and correct and not known:  # the workflow counted the use; helpfulness is new
                self.memory.mark_helpful(used)
        if correct is None or known:
            return
        writer = self.services.reasoner or self.vlm
        drafts = extract_insights(trajectory, writer)  # rules when the model cannot write
        if drafts:
            self.memory.add_many([d.text for d in drafts], [d.kind for d in drafts], run_id=memory_run)

    def _update_monitor(self, state: dict[str, Any], truth: str | None) -> None:
        assert self.monitor is not None
        if truth is None:
            return  # wrong, but the right option is unknown: coverage cannot be judged
        options = state.get("options") or []
        answered, chosen = not state.get("abstained"), state.get("answer")
        if not options:  # a free-text answer: the gate bounds P(answered and wrong)
            if isinstance(self.calibration, AnswerGate):
                self.monitor.update(not (answered and not matches(chosen or "", truth)))
        elif _selective(self.calibration):
            self.monitor.update_selective(answered, chosen == truth)
            if self.monitor.threshold is not None and isinstance(self.calibration, AnswerGate):
                # drift seen: the gate now answers above the adaptive threshold (ACI)
                self.services.calibration = self.calibration.with_options_threshold(self.monitor.threshold)
        elif truth in options:
            self.monitor.update(truth in (state.get("prediction_set") or []))


def _selective(calibration: AnswerGate | ConformalCalibration | SelectiveCalibration | None) -> bool:
    """Whether multiple-choice answers are gated by a threshold (CRC / LTT) rather than a set."""
    if isinstance(calibration, AnswerGate):
        return calibration.method in ("crc", "ltt")
    return isinstance(calibration, SelectiveCalibration)
