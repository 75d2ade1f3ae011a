"""``zoom``: search the image tree for the crops the question needs (the zoom agent, without its answer)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from langgraph.config import get_config
from pydantic import Field

from foveate.errors import BudgetExceeded, GraphSpecError
from foveate.graphs.nodes.common import WATCH, NodeParams, question_ledger, say
from foveate.graphs.registry import NodeFn
from foveate.graphs.services import Services
from foveate.graphs.state import QAState
from foveate.insights import search_prior
from foveate.zoom import ZoomConfig
from foveate.zoom.config import Visit

__all__ = ["ZoomParams", "zoom_node"]


class ZoomParams(NodeParams):
    strategy: str = "fast"
    """A zoom strategy the services' registry knows (built in: direct, zoomeye, fast, attention_crop)."""
    escalate: list[str] = Field(default_factory=list)
    """The strategy for the judge's 2nd, 3rd... attempt."""
    max_depth: int = Field(default=5, ge=0, le=12)
    max_probes: int | None = Field(default=None, ge=0)
    max_forward_passes: int | None = Field(default=None, ge=1)
    early_stop: bool = True
    priors: bool = True
    """With a memory: search with the priors the experience of earlier runs of this kind of question gives
    (``foveate.zoom.experience``; none until enough of them are known to be right or wrong)."""


def zoom_node(params: ZoomParams, services: Services) -> NodeFn:
    """Search the image tree for the crops the question needs (the zoom agent, without its answer)."""
    for name in (params.strategy, *params.escalate):
        if name not in services.strategies:
            raise GraphSpecError(
                f"zoom node: unknown strategy {name!r}; known: {', '.join(services.strategies.names())}"
            )

    def zoom(state: QAState) -> dict[str, Any]:
        attempt = int(state.get("attempts") or 0)
        strategy = params.escalate[attempt - 1] if 0 < attempt <= len(params.escalate) else params.strategy
        try:
            ledger = question_ledger(state)
        except BudgetExceeded as exc:
            return {"budget_exhausted": True, "zoom_notes": [str(exc)], "messages": say("zoom", str(exc))}
        config = ZoomConfig(
            strategy=strategy,
            max_depth=params.max_depth,
            max_probes=params.max_probes,
            max_forward_passes=params.max_forward_passes,
            early_stop=params.early_stop,
            budget=ledger.budget,
        )
        image = services.image(state)
        cues = state.get("cues")
        if cues is None and services.cue_source is not None:  # no perceive node before: the runtime's own
            cues = services.cue_source(state["question"])
        memory = services.memory if params.priors else None
        result = services.zoom_agent(config).run(
            image,
            state["question"],
            state.get("options") or None,
            cues=cues,
            answer=False,
            watch=_progress_writer(),
            prior=None
            if memory is None
            else lambda listed: search_prior(memory, state["question"], listed, strategy),
        )
        if result.probes == 0 and result.budget_exhausted and state.get("answer_box"):
            # no room for a single probe: keep what the earlier search found rather than forget it
            return {
                "budget_exhausted": True,
                "zoom_notes": result.notes,
                "spent": result.usage.model_dump(),
                "overruns": result.overruns,
                "messages": say("zoom", "no tokens left for another search; keeping the earlier crop"),
            }
        crops = [list(c) for c in result.crops]
        where = "the whole image" if result.answer_box is None else f"crop {list(result.answer_box)}"
        return {
            "strategy": strategy,
            "cues": result.cues,  # listed by the search when the state had none: the run is stored with them
            "crops": crops,
            "answer_box": list(result.answer_box) if result.answer_box is not None else None,
            "probes": result.probes,
            "visits": [v.model_dump(mode="json", exclude_none=True) for v in result.visits],
            "budget_exhausted": result.budget_exhausted,
            "zoom_notes": result.notes,
            "perception": [f"zoom ({strategy}): {len(result.visits)} views probed; settled on {where}"],
            "spent": result.usage.model_dump(),
            "overruns": result.overruns,
            "messages": say("zoom", f"{strategy} search: {result.probes} probes, settled on {where}"),
        }

    return zoom


def _progress_writer() -> Callable[[int, int, Sequence[Visit]], None] | None:
    """Each probe's count and each view, live, to whoever streams the run with ``watch``
    (``Workflow.stream``); None when nobody does, or the node is called outside a graph run (a test, a
    user's own loop)."""
    try:
        told = get_config().get("configurable", {}).get(WATCH)
    except RuntimeError:  # "Called get_config outside of a runnable context"
        return None
    return None if told is None else lambda probes, tokens, views: told("zoom", probes, tokens, views)
