"""The built-in node types and conditions, wrapping the agents, and the ``Runtime`` they run against.

Each node is ``factory(params, runtime) -> fn(state) -> update``: the factory gets its validated params
once, when the workflow is compiled; the function reads the state and returns only the keys it sets.
Nodes are deterministic given the state, so a run resumed from a checkpoint redoes exactly what was lost.

Seeing and reasoning are separate, as in ProReason / Prism: ``perceive`` and ``zoom`` look (the VLM,
"eyesight"), ``reason`` answers from what was seen and recalled (the VLM again, or a separate text-only
model, "wisdom"), ``judge`` decides whether the evidence suffices or to look again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langgraph.types import interrupt
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from foveate.agents.abstention import abstain_or_answer
from foveate.agents.insights import Trajectory, can_write, lessons_prompt, recall, remember
from foveate.agents.zoom import Strategy, ZoomAgent, ZoomConfig
from foveate.agents.zoom_prompts import preset_for
from foveate.conformal import ConformalCalibration, SelectiveCalibration
from foveate.errors import BudgetExceeded, GraphSpecError
from foveate.graphs.registry import NodeFn, Registry
from foveate.graphs.state import QAState, model_choice
from foveate.memory import InsightMemory
from foveate.tools.images import load_image
from foveate.vlm.base import VLM
from foveate.vlm.budget import TokenBudget, TokenLedger
from foveate.vlm.types import TokenUsage, VLMRequest

__all__ = ["Runtime", "builtin_registry", "can_write", "wording_cues"]

log = logging.getLogger(__name__)

Calibration = ConformalCalibration | SelectiveCalibration


@dataclass
class Runtime:
    """What nodes need besides the state: models, memory, calibration. Never checkpointed.

    ``reasoner``: a text-only model for ``reason`` with ``model: text`` (None: the VLM reasons too).
    ``cue_source``: how ``perceive`` lists the objects to look for (``None``: the model lists them when
    it can write, else they are read off the question's wording).
    """

    vlm: VLM
    reasoner: VLM | None = None
    memory: InsightMemory | None = None
    calibration: Calibration | None = None
    cue_source: Callable[[str], list[str]] | None = None
    image_cache_size: int = 8
    _images: OrderedDict[str, Image.Image] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _agents: dict[str, ZoomAgent] = field(default_factory=dict, repr=False)

    def image(self, state: QAState | dict[str, Any]) -> Image.Image:
        """The question's image, decoded once per run (a 2000 px PNG takes ~50 ms to decode)."""
        path = state["image_path"]
        with self._lock:
            if path in self._images:
                self._images.move_to_end(path)
                return self._images[path]
        image = load_image(path)
        self.remember_image(path, image)
        return image

    def remember_image(self, path: str, image: Image.Image) -> None:
        """Prime the cache with an image already decoded (by ``Workflow.start_state``)."""
        with self._lock:
            self._images[path] = image
            while len(self._images) > self.image_cache_size:
                self._images.popitem(last=False)

    def zoom_agent(self, config: ZoomConfig) -> ZoomAgent:
        if config.budget is not None:  # a per-question budget: cheap to build, not worth keeping
            return ZoomAgent(self.vlm, config)
        key = config.model_dump_json()
        with self._lock:
            if key not in self._agents:
                self._agents[key] = ZoomAgent(self.vlm, config)
            return self._agents[key]


def wording_cues(question: str) -> list[str]:
    """Objects read off the question's wording, for models that cannot list them: the synthetic
    benchmark's phrasings are parsed; any other question is searched for as a whole (ZoomEye's rule
    when a question names no single object)."""
    from foveate.fixtures.tasks import question_cues

    try:
        return question_cues(question)
    except ValueError:
        return []


# ---------------------------------------------------------------------------------------- helpers
def ledger_for(state: QAState) -> TokenLedger:
    """A ledger holding what is left of the question's budget after the nodes before this one."""
    budget = TokenBudget.model_validate(state.get("budget") or {})
    spent = TokenUsage(**(state.get("spent") or {})).total
    if budget.max_total_tokens is not None:
        left = budget.max_total_tokens - spent
        if left < 1:
            raise BudgetExceeded(
                f"the question's {budget.max_total_tokens}-token budget is spent ({spent} tokens)",
                needed=1,
                remaining=left,
            )
        budget = budget.model_copy(update={"max_total_tokens": left})
    return TokenLedger(budget)


def _spent(ledger: TokenLedger) -> dict[str, int]:
    return ledger.spent.model_dump()


def _say(node: str, text: str) -> list[dict[str, str]]:
    return [{"node": node, "text": text}]


# ------------------------------------------------------------------------------------ node params
class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PerceiveParams(_Params):
    describe: bool | None = None  # None: when the model can write
    max_new_tokens: int = Field(default=96, ge=1, le=1024)
    probe_root: bool = True  # one probe: can the question be answered from the whole image?


class ZoomParams(_Params):
    strategy: Strategy = "fast"
    escalate: list[Strategy] = Field(default_factory=list)  # strategy for the judge's 2nd, 3rd... attempt
    max_depth: int = Field(default=5, ge=0, le=12)
    max_probes: int | None = Field(default=None, ge=0)
    max_forward_passes: int | None = Field(default=None, ge=1)
    early_stop: bool = True


class RecallParams(_Params):
    k: int = Field(default=3, ge=0, le=50)
    min_score: float | None = Field(default=0.2, ge=-1.0, le=1.0)


class ReasonParams(_Params):
    model: Literal["vlm", "text"] = "vlm"  # text: the runtime's text-only reasoner, from the notes alone
    use_insights: bool | None = None  # None: when the model reads instructions (not the tiny fixture VLM)
    use_perception: bool = True
    from_crop: bool = True  # answer from the zoomed crop when there is one


class JudgeParams(_Params):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)  # top option probability that suffices
    max_retries: int = Field(default=1, ge=0, le=10)
    min_tokens: int = Field(default=256, ge=1)  # look again only if the question's budget has this many left


class AbstainParams(_Params):
    on_ambiguous: Literal["abstain", "set"] = "abstain"
    ask_human: bool = False  # on abstention, interrupt() and let the caller answer or give feedback


class ConfidentParams(_Params):
    threshold: float = Field(default=0.6, ge=-1.0, le=1.0)


# -------------------------------------------------------------------------------------- the nodes
def perceive_node(params: PerceiveParams, runtime: Runtime) -> NodeFn:
    """The VLM looks at the whole image: the objects to find, whether the question is answerable at this
    resolution, and (for models that write) a description of the image and the regions asked about."""
    writer = can_write(runtime.vlm)
    describe = writer if params.describe is None else params.describe
    prompts = preset_for(str(getattr(runtime.vlm, "family", "")), runtime.vlm.model_id)

    def perceive(state: QAState) -> dict[str, Any]:
        image, question = runtime.image(state), state["question"]
        notes: list[str] = []
        cues = runtime.cue_source(question) if runtime.cue_source is not None else wording_cues(question)
        try:
            ledger = ledger_for(state)
        except BudgetExceeded as exc:
            return {"cues": cues, "budget_exhausted": True, "messages": _say("perceive", str(exc))}
        update: dict[str, Any] = {}
        try:
            if runtime.cue_source is None and writer:
                cues = runtime.zoom_agent(ZoomConfig()).list_cues(image, question, ledger)
            if params.probe_root:
                result = runtime.vlm.yes_probability(
                    VLMRequest.from_prompt(prompts.answering.format(q=question), images=[image]), ledger
                )
                update["root_confidence"] = result.confidence
                notes.append(
                    f"whole image: answerable at this resolution with confidence {result.confidence:+.2f}"
                )
            if describe:
                request = VLMRequest.from_prompt(
                    f"Describe the image briefly, then the regions this question is about: {question}",
                    images=[image],
                    max_new_tokens=params.max_new_tokens,
                )
                notes.append("description: " + runtime.vlm.generate(request, ledger).text.strip())
        except BudgetExceeded as exc:  # what was seen so far stays; the rest of the graph decides
            notes.append(f"perception stopped: {exc}")
            update["budget_exhausted"] = True
        update |= {
            "cues": cues,
            "perception": notes,
            "spent": _spent(ledger),
            "messages": _say("perceive", f"looking for: {', '.join(cues) or 'the question as a whole'}"),
        }
        return update

    return perceive


def zoom_node(params: ZoomParams, runtime: Runtime) -> NodeFn:
    """Search the image tree for the crops the question needs (the zoom agent, without its answer)."""

    def zoom(state: QAState) -> dict[str, Any]:
        attempt = int(state.get("attempts") or 0)
        strategy = params.escalate[attempt - 1] if 0 < attempt <= len(params.escalate) else params.strategy
        try:
            ledger = ledger_for(state)
        except BudgetExceeded as exc:
            return {"budget_exhausted": True, "zoom_notes": [str(exc)], "messages": _say("zoom", str(exc))}
        config = ZoomConfig(
            strategy=strategy,
            max_depth=params.max_depth,
            max_probes=params.max_probes,
            max_forward_passes=params.max_forward_passes,
            early_stop=params.early_stop,
            budget=ledger.budget,
        )
        image = runtime.image(state)
        cues = state.get("cues")
        result = runtime.zoom_agent(config).run(
            image, state["question"], state.get("options") or None, cues=cues, answer=False
        )
        if result.probes == 0 and result.budget_exhausted and state.get("answer_box"):
            # no room for a single probe: keep what the earlier search found rather than forget it
            return {
                "budget_exhausted": True,
                "zoom_notes": result.notes,
                "spent": result.usage.model_dump(),
                "messages": _say("zoom", "no tokens left for another search; keeping the earlier crop"),
            }
        crops = [list(c) for c in result.crops]
        where = "the whole image" if result.answer_box is None else f"crop {list(result.answer_box)}"
        return {
            "strategy": strategy,
            "crops": crops,
            "answer_box": list(result.answer_box) if result.answer_box is not None else None,
            "probes": result.probes,
            "visits": [v.model_dump(mode="json", exclude_none=True) for v in result.visits],
            "budget_exhausted": result.budget_exhausted,
            "zoom_notes": result.notes,
            "perception": [f"zoom ({strategy}): {len(result.visits)} views probed; settled on {where}"],
            "spent": result.usage.model_dump(),
            "messages": _say("zoom", f"{strategy} search: {result.probes} probes, settled on {where}"),
        }

    return zoom


def recall_node(params: RecallParams, runtime: Runtime) -> NodeFn:
    """The insights most relevant to the question, from the insight memory (none without one)."""

    def recall_(state: QAState) -> dict[str, Any]:
        if runtime.memory is None or params.k == 0:
            return {"insights": [], "messages": _say("recall", "no insight memory configured")}
        hits = recall(runtime.memory, state["question"], params.k, min_score=params.min_score)
        insights = [
            {"id": h.insight.id, "text": h.insight.text, "kind": h.insight.kind.value, "score": h.score}
            for h in hits
        ]
        return {"insights": insights, "messages": _say("recall", f"{len(insights)} insights recalled")}

    return recall_


def reason_node(params: ReasonParams, runtime: Runtime) -> NodeFn:
    """Answer from what was seen (the crop, the notes) and what was recalled."""
    if params.model == "text" and runtime.reasoner is None:
        raise GraphSpecError("node type 'reason' with model: text needs a runtime with a text reasoner")
    model = runtime.reasoner if params.model == "text" else runtime.vlm
    assert model is not None
    use_insights = can_write(model) if params.use_insights is None else params.use_insights

    def reason(state: QAState) -> dict[str, Any]:
        question, options = state["question"], state.get("options") or []
        context = _context(state, params, use_insights)
        attempts = int(state.get("attempts") or 0) + 1
        try:
            ledger = ledger_for(state)
            if params.model == "text":
                assert runtime.reasoner is not None
                prompt = f"{context}\n\nQuestion: {question}" if context else question
                request = VLMRequest.from_prompt(prompt)
                if options:
                    scored = runtime.reasoner.score(request, options, ledger)
                    answer, scores = scored.best, scored.probabilities
                else:
                    answer, scores = runtime.reasoner.generate(request, ledger).text.strip(), []
            else:
                box = state.get("answer_box") if params.from_crop else None
                agent = runtime.zoom_agent(ZoomConfig())
                answer, scores = agent.answer_from(
                    runtime.image(state),
                    question,
                    options or None,
                    tuple(box) if box else None,  # type: ignore[arg-type]
                    ledger,
                    context=context or None,
                )
        except BudgetExceeded as exc:
            kept = state.get("answer") is not None  # an earlier attempt's answer stands
            return {
                **({} if kept else {"answer": None, "option_scores": []}),
                "attempts": attempts,
                "budget_exhausted": True,
                "messages": _say("reason", f"{'kept the earlier answer' if kept else 'no answer'}: {exc}"),
            }
        top = max(scores) if scores else None
        said = f"answer {answer!r}" + (f" (p = {top:.2f})" if top is not None else "")
        return {
            "answer": answer,
            "option_scores": scores,
            "attempts": attempts,
            "spent": _spent(ledger),
            "messages": _say("reason", said),
        }

    return reason


def _context(state: QAState, params: ReasonParams, use_insights: bool) -> str:
    parts: list[str] = []
    if use_insights and state.get("insights"):
        parts.append(lessons_prompt([i["text"] for i in state["insights"]]))
    if params.use_perception and params.model == "text" and state.get("perception"):
        parts.append("What was seen:\n" + "\n".join(f"- {n}" for n in state["perception"]))
    return "\n\n".join(parts)


def _tokens_left(state: QAState, wanted: int) -> bool:
    try:
        remaining = ledger_for(state).remaining
    except BudgetExceeded:
        return False
    return remaining is None or remaining >= wanted


def judge_node(params: JudgeParams, runtime: Runtime) -> NodeFn:
    """Is the evidence sufficient? Sufficient when the answer's probability reaches the threshold;
    otherwise look again (``retry``) while retries are left, then ``give_up`` (abstention decides)."""

    def retry_cost(state: QAState) -> int:
        """Tokens another look needs at least: the answer's reserve and a round of child probes."""
        return runtime.zoom_agent(ZoomConfig()).retry_cost(runtime.image(state))

    def judge(state: QAState) -> dict[str, Any]:
        scores = state.get("option_scores") or []
        top = max(scores) if scores else (1.0 if state.get("answer") else 0.0)
        attempts = int(state.get("attempts") or 0)
        if top >= params.threshold:
            verdict = "sufficient"
        elif attempts <= params.max_retries and _tokens_left(
            state, max(params.min_tokens, retry_cost(state))
        ):
            # a search that hit its own probe cap may still be retried (the next strategy may differ);
            # only the question's token budget being spent ends the loop
            verdict = "retry"
        else:
            verdict = "give_up"
        return {
            "verdict": verdict,
            "messages": _say("judge", f"{verdict} (top p = {top:.2f}, try {attempts})"),
        }

    return judge


def abstain_node(params: AbstainParams, runtime: Runtime) -> NodeFn:
    """The conformal gate: answer only when the calibrated rule says the risk is within alpha."""

    def abstain(state: QAState) -> dict[str, Any]:
        options, scores, answer = (
            state.get("options") or [],
            state.get("option_scores") or [],
            state.get("answer"),
        )
        if answer is None:
            update = {"abstained": True, "abstain_reason": "no answer was produced"}
        elif runtime.calibration is None or not options or len(scores) != len(options):
            why = "no calibration loaded" if runtime.calibration is None else "a free-text answer"
            return {
                "abstained": False,
                "abstain_reason": "",
                "messages": _say("abstain", f"answered without a guarantee ({why})"),
            }
        else:
            decision = abstain_or_answer(
                options, scores, runtime.calibration, on_ambiguous=params.on_ambiguous
            )
            update = {
                "abstained": decision.action == "abstain",
                "abstain_reason": "" if decision.action == "answer" else decision.reason,
                "prediction_set": decision.kept,
            }
        if update["abstained"] and params.ask_human:
            reply = interrupt(
                {
                    "question": state["question"],
                    "options": options,
                    "candidate": answer,
                    "option_scores": scores,
                    "reason": update["abstain_reason"],
                }
            )
            human = reply if isinstance(reply, dict) else {"answer": reply}
            update["human"] = human
            if human.get("answer"):
                update |= {"abstained": False, "answer": str(human["answer"]), "abstain_reason": ""}
        said = f"abstained: {update['abstain_reason']}" if update["abstained"] else "answered"
        return update | {"messages": _say("abstain", said)}

    return abstain


def remember_node(params: _Params, runtime: Runtime) -> NodeFn:
    """Record the run and distil it into insights (when the outcome is known: ground truth or a person)."""

    def remember_(state: QAState) -> dict[str, Any]:
        if runtime.memory is None:
            return {"messages": _say("remember", "no insight memory configured")}
        answer = state.get("answer")
        human = state.get("human") or {}
        correct: bool | None = None
        if state.get("expected") is not None and answer is not None:
            correct = answer == state["expected"]
        elif human.get("answer") and state.get("option_scores"):
            # the person answered: the model's own top choice was right iff it matches
            correct = model_choice(state) == human["answer"]
        trajectory = trajectory_from_state(state, runtime.image(state).size, runtime.vlm.model_id)
        said = [human["feedback"]] if human.get("feedback") else []
        if human.get("answer"):
            said.append(f"a person answered {human['answer']!r}")
        trajectory = trajectory.model_copy(update={"correct": correct, "feedback": "; ".join(said) or None})
        writer = runtime.reasoner or runtime.vlm
        stored = remember(
            runtime.memory,
            trajectory,
            image_sha256=state.get("image_sha256"),
            vlm=writer,  # extract_insights lets it write only if it can
            drafts=None if correct is not None else [],  # lessons need an outcome; feedback adds them later
        )
        used = [int(i["id"]) for i in state.get("insights") or []]
        if used:
            runtime.memory.mark_used(used, helpful=correct)
        return {
            "run_id": stored.run_id,
            "insight_ids": stored.added + stored.merged,
            "messages": _say("remember", f"run {stored.run_id}: {len(stored.drafts)} insights"),
        }

    return remember_


def trajectory_from_state(
    state: QAState | dict[str, Any], image_size: tuple[int, int], model_id: str
) -> Trajectory:
    """What the run did, for insight extraction (correctness left unknown: the caller knows it)."""
    box = state.get("answer_box")
    scores = state.get("option_scores") or []
    return Trajectory(
        question=state["question"],
        options=state.get("options") or [],
        answer=model_choice(state),
        strategy=state.get("strategy", "direct"),
        cues=state.get("cues") or [],
        image_size=image_size,
        answer_box=tuple(box) if box else None,  # type: ignore[arg-type]
        confidence=max(scores) if scores else None,
        probes=int(state.get("probes") or 0),
        budget_exhausted=bool(state.get("budget_exhausted")),
        model_id=model_id,
    )


# ------------------------------------------------------------------------------------- conditions
def verdict_condition(state: dict[str, Any], params: BaseModel) -> str:
    """The judge's verdict: sufficient, retry or give_up."""
    return str(state.get("verdict") or "give_up")


def confident_condition(state: dict[str, Any], params: ConfidentParams) -> str:
    """``answer`` when the whole image already looked answerable (root confidence >= threshold),
    else ``zoom``."""
    confidence = state.get("root_confidence")
    return "answer" if confidence is not None and confidence >= params.threshold else "zoom"


def abstained_condition(state: dict[str, Any], params: BaseModel) -> str:
    """``abstained`` or ``answered``."""
    return "abstained" if state.get("abstained") else "answered"


def builtin_registry() -> Registry:
    """A fresh registry with the built-in node types and conditions; ``.copy()``-free: it is yours."""
    registry = Registry()
    registry.node("perceive", PerceiveParams)(perceive_node)
    registry.node("zoom", ZoomParams)(zoom_node)
    registry.node("recall", RecallParams)(recall_node)
    registry.node("reason", ReasonParams)(reason_node)
    registry.node("judge", JudgeParams)(judge_node)
    registry.node("abstain", AbstainParams)(abstain_node)
    registry.node("remember")(remember_node)
    registry.condition("verdict", ["sufficient", "retry", "give_up"])(verdict_condition)
    registry.condition("confident", ["answer", "zoom"], ConfidentParams)(confident_condition)
    registry.condition("abstained", ["answered", "abstained"])(abstained_condition)
    return registry


def image_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
