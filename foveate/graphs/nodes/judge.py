"""``judge``: is the evidence sufficient, or should the workflow look again?"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from foveate.graphs.nodes.common import NodeParams, say, tokens_left
from foveate.graphs.registry import NodeFn
from foveate.graphs.services import Services
from foveate.graphs.state import QAState
from foveate.zoom import ZoomConfig

__all__ = ["JudgeParams", "judge_node"]


class JudgeParams(NodeParams):
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)  # top option probability that suffices
    max_retries: int = Field(default=1, ge=0, le=10)
    min_tokens: int = Field(default=256, ge=1)  # look again only if the question's budget has this many left


def judge_node(params: JudgeParams, services: Services) -> NodeFn:
    """Is the evidence sufficient? Sufficient when the answer's probability reaches the threshold;
    otherwise look again (``retry``) while retries are left, then ``give_up`` (abstention decides)."""

    def retry_cost(state: QAState) -> int:
        """Tokens another look needs at least: the answer's reserve and a round of child probes."""
        return services.zoom_agent(ZoomConfig()).retry_cost(services.image(state))

    def judge(state: QAState) -> dict[str, Any]:
        scores = state.get("option_scores") or []
        top = max(scores) if scores else (1.0 if state.get("answer") else 0.0)
        attempts = int(state.get("attempts") or 0)
        if top >= params.threshold:
            verdict = "sufficient"
        elif attempts <= params.max_retries and tokens_left(state, max(params.min_tokens, retry_cost(state))):
            # a search that hit its own probe cap may still be retried (the next strategy may differ);
            # only the question's token budget being spent ends the loop
            verdict = "retry"
        else:
            verdict = "give_up"
        return {
            "verdict": verdict,
            "messages": say("judge", f"{verdict} (top p = {top:.2f}, try {attempts})"),
        }

    return judge
