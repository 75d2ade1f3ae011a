"""``recall``: the insights most relevant to the question, from the insight memory."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from foveate.graphs.nodes.common import NodeParams, say
from foveate.graphs.registry import NodeFn
from foveate.graphs.services import Services
from foveate.graphs.state import QAState
from foveate.insights import DEFAULT_MIN_SCORE, recall

__all__ = ["RecallParams", "recall_node"]


class RecallParams(NodeParams):
    k: int = Field(default=3, ge=0, le=50)
    min_score: float | None = Field(default=DEFAULT_MIN_SCORE, ge=-1.0, le=1.0)
    """Leave out lessons less similar to the question than this (MiniLM cosine; None: no floor)."""


def recall_node(params: RecallParams, services: Services) -> NodeFn:
    """The insights most relevant to the question, from the insight memory (none without one)."""

    def recall_(state: QAState) -> dict[str, Any]:
        if services.memory is None or params.k == 0:
            return {"insights": [], "messages": say("recall", "no insight memory configured")}
        hits = recall(services.memory, state["question"], params.k, min_score=params.min_score)
        insights = [
            {"id": h.insight.id, "text": h.insight.text, "kind": h.insight.kind.value, "score": h.score}
            for h in hits
        ]
        return {"insights": insights, "messages": say("recall", f"{len(insights)} insights recalled")}

    return recall_
