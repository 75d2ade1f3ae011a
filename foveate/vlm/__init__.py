"""VLM backends behind one contract, with what each model is (its profile) and token accounting.

- the contract: ``VLM`` (protocol) and ``BaseVLM`` (shared plumbing), ``foveate.vlm.base``;
- requests and results: ``VLMRequest``, ``Message``, ``ScoreResult``, ``YesNoResult``, ...;
- budgets: ``TokenBudget``, ``TokenLedger``, ``TokenUsage``;
- what a model is: ``VLMProfile``, ``Family``, ``ZoomPrompts``, and the families (``builtin_families``);
- backends: ``TransformersVLM`` (local), ``OpenAIVLM`` (any OpenAI-compatible server), ``CoalescingVLM``
  (shares forward passes between concurrent questions); ``load_vlm`` picks one from a name.

Backends are imported lazily so that ``import foveate.vlm`` stays cheap (no torch import) for code that
only needs the models above or talks to a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foveate.errors import BudgetExceeded
from foveate.vlm.base import VLM, BaseVLM
from foveate.vlm.budget import TokenBudget, TokenLedger, TokenUsage
from foveate.vlm.families import FamilyRegistry, builtin_families
from foveate.vlm.loading import load_vlm
from foveate.vlm.profile import Family, VLMProfile
from foveate.vlm.prompts import ZoomPrompts
from foveate.vlm.types import (
    GenerationOptions,
    ImagePart,
    Message,
    RelevanceMap,
    ScoreResult,
    TextPart,
    VLMRequest,
    VLMResult,
    YesNoResult,
)
from foveate.vlm.visual_tokens import VisualTokenRule

if TYPE_CHECKING:
    from foveate.vlm.batching import CoalescingVLM
    from foveate.vlm.openai_vlm import OpenAIVLM
    from foveate.vlm.transformers_vlm import TransformersVLM

__all__ = [
    "VLM",
    "BaseVLM",
    "BudgetExceeded",
    "CoalescingVLM",
    "Family",
    "FamilyRegistry",
    "GenerationOptions",
    "ImagePart",
    "Message",
    "OpenAIVLM",
    "RelevanceMap",
    "ScoreResult",
    "TextPart",
    "TokenBudget",
    "TokenLedger",
    "TokenUsage",
    "TransformersVLM",
    "VLMProfile",
    "VLMRequest",
    "VLMResult",
    "VisualTokenRule",
    "YesNoResult",
    "ZoomPrompts",
    "builtin_families",
    "load_vlm",
]

_LAZY = {
    "TransformersVLM": "foveate.vlm.transformers_vlm",
    "OpenAIVLM": "foveate.vlm.openai_vlm",
    "CoalescingVLM": "foveate.vlm.batching",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'foveate.vlm' has no attribute {name!r}")
