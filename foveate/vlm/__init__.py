"""VLM backends behind one protocol, with token accounting.

Backends are imported lazily so that ``import foveate.vlm`` stays cheap (no torch import)
for code that only needs the request/result models or talks to a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foveate.errors import BudgetExceeded
from foveate.vlm.base import VLM, BaseVLM
from foveate.vlm.budget import TokenBudget, TokenLedger
from foveate.vlm.types import (
    GenerationOptions,
    ImagePart,
    Message,
    ScoreResult,
    TextPart,
    TokenUsage,
    VLMRequest,
    VLMResult,
    YesNoResult,
)

if TYPE_CHECKING:
    from foveate.vlm.openai_vlm import OpenAIVLM
    from foveate.vlm.transformers_vlm import TransformersVLM

__all__ = [
    "VLM",
    "BaseVLM",
    "BudgetExceeded",
    "GenerationOptions",
    "ImagePart",
    "Message",
    "OpenAIVLM",
    "ScoreResult",
    "TextPart",
    "TokenBudget",
    "TokenLedger",
    "TokenUsage",
    "TransformersVLM",
    "VLMRequest",
    "VLMResult",
    "YesNoResult",
]


def __getattr__(name: str) -> Any:
    if name == "TransformersVLM":
        from foveate.vlm.transformers_vlm import TransformersVLM

        return TransformersVLM
    if name == "OpenAIVLM":
        from foveate.vlm.openai_vlm import OpenAIVLM

        return OpenAIVLM
    raise AttributeError(name)
