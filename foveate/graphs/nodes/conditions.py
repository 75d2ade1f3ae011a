"""The built-in route conditions: the judge's verdict, whether the whole image already answers, abstained."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from foveate.graphs.nodes.common import NodeParams

__all__ = ["ConfidentParams", "abstained_condition", "confident_condition", "verdict_condition"]


class ConfidentParams(NodeParams):
    threshold: float = Field(default=0.6, ge=-1.0, le=1.0)


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
