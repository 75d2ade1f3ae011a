"""What a workflow's answers are, for the abstention gate: the model, the workflow's spec, its zoom
strategies and the budget (``GateKey``). A gate calibrated on one key says nothing about another's answers."""

from __future__ import annotations

import hashlib
import json

from foveate.conformal.answer_gate import GateKey
from foveate.graphs.nodes.zoom import ZoomParams
from foveate.graphs.spec import WorkflowSpec
from foveate.vlm.base import VLM, model_fingerprint
from foveate.vlm.budget import TokenBudget

__all__ = ["gate_key", "spec_sha256", "zoom_strategies"]


def spec_sha256(spec: WorkflowSpec) -> str:
    """SHA-256 of the spec as canonical JSON (sorted keys): the same workflow however its YAML is laid out."""
    text = json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def zoom_strategies(spec: WorkflowSpec) -> str:
    """The strategies the spec's ``zoom`` nodes run, first attempt and escalations (``none`` without one)."""
    names: list[str] = []
    for node in spec.nodes.values():
        if node.uses != "zoom":
            continue
        params = ZoomParams.model_validate(node.params)
        for name in [params.strategy, *params.escalate]:
            if name not in names:
                names.append(str(name))
    return ", ".join(names) or "none"


def gate_key(vlm: VLM, spec: WorkflowSpec, budget: TokenBudget) -> GateKey:
    """The key of ``spec``'s answers by ``vlm`` under ``budget``."""
    return GateKey(
        model_id=vlm.model_id,
        model_fingerprint=model_fingerprint(vlm),
        workflow=spec.name,
        workflow_sha256=spec_sha256(spec),
        strategy=zoom_strategies(spec),
        budget=json.dumps(budget.model_dump(mode="json"), sort_keys=True, separators=(",", ":")),
    )
