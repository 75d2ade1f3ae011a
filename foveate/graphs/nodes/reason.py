"""``reason``: answer from what was seen (the crop, the notes) and what was recalled."""

from __future__ import annotations

from typing import Any, Literal

from foveate.errors import BudgetExceeded, GraphSpecError
from foveate.graphs.nodes.common import NodeParams, overruns, question_ledger, say, spent
from foveate.graphs.registry import NodeFn
from foveate.graphs.services import Services
from foveate.graphs.state import QAState
from foveate.insights import lessons_prompt
from foveate.vlm.types import VLMRequest
from foveate.zoom import ZoomConfig
from foveate.zoom.answering import Reply

__all__ = ["ReasonParams", "reason_node"]


class ReasonParams(NodeParams):
    model: Literal["vlm", "text"] = "vlm"  # text: the services's text-only reasoner, from the notes alone
    use_insights: bool | None = None  # None: when the model reads instructions (not the tiny fixture VLM)
    use_perception: bool = True
    from_crop: bool = True  # answer from the zoomed crop when there is one


def reason_node(params: ReasonParams, services: Services) -> NodeFn:
    """Answer from what was seen (the crop, the notes) and what was recalled."""
    if params.model == "text" and services.reasoner is None:
        raise GraphSpecError("node type 'reason' with model: text needs a services with a text reasoner")
    model = services.reasoner if params.model == "text" else services.vlm
    assert model is not None
    use_insights = model.profile.writes if params.use_insights is None else params.use_insights

    def reason(state: QAState) -> dict[str, Any]:
        question, options = state["question"], state.get("options") or []
        context = _context(state, params, use_insights)
        attempts = int(state.get("attempts") or 0) + 1
        try:
            ledger = question_ledger(state)
            if params.model == "text":
                assert services.reasoner is not None
                prompt = f"{context}\n\nQuestion: {question}" if context else question
                request = VLMRequest.from_prompt(prompt)
                if options:
                    scored = services.reasoner.score(request, options, ledger)
                    reply = Reply(scored.best, scored.probabilities)
                else:
                    generated = services.reasoner.generate(request, ledger)
                    reply = Reply(generated.text.strip(), confidence=generated.confidence)
            else:
                box = state.get("answer_box") if params.from_crop else None
                agent = services.zoom_agent(ZoomConfig())
                reply = agent.answer_from(
                    services.image(state),
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
                "messages": say("reason", f"{'kept the earlier answer' if kept else 'no answer'}: {exc}"),
            }
        answer, scores = reply.text, reply.probabilities
        top = max(scores) if scores else reply.confidence
        said = f"answer {answer!r}" + (f" (p = {top:.2f})" if top is not None else "")
        return {
            "answer": answer,
            "option_scores": scores,
            "answer_confidence": reply.confidence,
            "attempts": attempts,
            "spent": spent(ledger),
            "overruns": overruns(ledger),
            "messages": say("reason", said),
        }

    return reason


def _context(state: QAState, params: ReasonParams, use_insights: bool) -> str:
    parts: list[str] = []
    if use_insights and state.get("insights"):
        parts.append(lessons_prompt([i["text"] for i in state["insights"]]))
    if params.use_perception and params.model == "text" and state.get("perception"):
        parts.append("What was seen:\n" + "\n".join(f"- {n}" for n in state["perception"]))
    return "\n\n".join(parts)
