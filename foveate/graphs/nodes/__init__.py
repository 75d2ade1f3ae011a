"""The built-in node types and conditions, one module each, and the registry that names them.

Each node is ``factory(params, services) -> fn(state) -> update``: the factory gets its validated params
once, when the workflow is compiled; the function reads the state and returns only the keys it sets.
Nodes are deterministic given the state, so a run resumed from a checkpoint redoes exactly what was lost.

Seeing and reasoning are separate, as in ProReason / Prism: ``perceive`` and ``zoom`` look (the VLM,
"eyesight"), ``reason`` answers from what was seen and recalled (the VLM again, or a separate text-only
model, "wisdom"), ``judge`` decides whether the evidence suffices or to look again, ``abstain`` is the
conformal gate, ``remember`` turns a finished run into insights.
"""

from __future__ import annotations

from foveate.graphs.nodes.abstain import AbstainParams, abstain_node
from foveate.graphs.nodes.common import NodeParams, question_ledger
from foveate.graphs.nodes.conditions import (
    ConfidentParams,
    abstained_condition,
    confident_condition,
    verdict_condition,
)
from foveate.graphs.nodes.judge import JudgeParams, judge_node
from foveate.graphs.nodes.perceive import PerceiveParams, perceive_node
from foveate.graphs.nodes.reason import ReasonParams, reason_node
from foveate.graphs.nodes.recall import RecallParams, recall_node
from foveate.graphs.nodes.remember import remember_node, trajectory_from_state
from foveate.graphs.nodes.zoom import ZoomParams, zoom_node
from foveate.graphs.registry import Registry

__all__ = [
    "AbstainParams",
    "ConfidentParams",
    "JudgeParams",
    "NodeParams",
    "PerceiveParams",
    "ReasonParams",
    "RecallParams",
    "ZoomParams",
    "builtin_registry",
    "question_ledger",
    "trajectory_from_state",
]


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
