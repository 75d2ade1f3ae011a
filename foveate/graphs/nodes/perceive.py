"""``perceive``: the VLM looks at the whole image before any search."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from foveate.errors import BudgetExceeded
from foveate.graphs.nodes.common import NodeParams, overruns, question_ledger, say, spent
from foveate.graphs.registry import NodeFn
from foveate.graphs.services import Services
from foveate.graphs.state import QAState
from foveate.vlm.types import VLMRequest
from foveate.zoom import ZoomConfig, wording_cues

__all__ = ["PerceiveParams", "perceive_node"]


class PerceiveParams(NodeParams):
    describe: bool | None = None  # None: when the model can write
    max_new_tokens: int = Field(default=96, ge=1, le=1024)
    probe_root: bool = True  # one probe: can the question be answered from the whole image?


def perceive_node(params: PerceiveParams, services: Services) -> NodeFn:
    """The VLM looks at the whole image: the objects to find, whether the question is answerable at this
    resolution, and (for models that write) a description of the image and the regions asked about."""
    writer = services.vlm.profile.writes
    describe = writer if params.describe is None else params.describe
    prompts = services.vlm.profile.zoom

    def perceive(state: QAState) -> dict[str, Any]:
        image, question = services.image(state), state["question"]
        notes: list[str] = []
        cues = services.cue_source(question) if services.cue_source is not None else wording_cues(question)
        try:
            ledger = question_ledger(state)
        except BudgetExceeded as exc:
            return {"cues": cues, "budget_exhausted": True, "messages": say("perceive", str(exc))}
        update: dict[str, Any] = {}
        try:
            if services.cue_source is None:
                cues = services.zoom_agent(ZoomConfig()).question_cues(image, question, ledger)
            if params.probe_root:
                result = services.vlm.yes_probability(
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
                notes.append("description: " + services.vlm.generate(request, ledger).text.strip())
        except BudgetExceeded as exc:  # what was seen so far stays; the rest of the graph decides
            notes.append(f"perception stopped: {exc}")
            update["budget_exhausted"] = True
        update |= {
            "cues": cues,
            "perception": notes,
            "spent": spent(ledger),
            "overruns": overruns(ledger),
            "messages": say("perceive", f"looking for: {', '.join(cues) or 'the question as a whole'}"),
        }
        return update

    return perceive
