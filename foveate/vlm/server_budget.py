"""What a call to an OpenAI-compatible server may spend, bounded before it is sent, and what it did spend.

The server tokenises, so foveate cannot count a request's tokens exactly; it can bound them. Visual tokens
come from the model family's arithmetic (the caller's ``token_rule``). Text is bounded by its UTF-8 bytes:
no tokenizer makes more tokens than bytes (byte-level BPE and SentencePiece with byte fallback spend at
most one per byte). The chat template adds markers around the text: measured on the chat templates of the
LLaVA, Qwen2-VL and Idefics3 test models and the tiny VLM, 7 to 10 tokens around a one-message, one-image
prompt besides its text and image placeholder; Qwen's templates add a default system turn of about a dozen
more. The margins below (88 for such a prompt) are several times that.
"""

from __future__ import annotations

import logging
from typing import Any

from foveate.vlm.budget import TokenUsage
from foveate.vlm.types import VLMRequest

__all__ = ["TEMPLATE_TOKENS", "TOKENS_PER_IMAGE", "TOKENS_PER_MESSAGE", "reported_usage", "text_bound"]

logger = logging.getLogger(__name__)

TEMPLATE_TOKENS = 64
TOKENS_PER_MESSAGE = 16
TOKENS_PER_IMAGE = 8


def text_bound(request: VLMRequest) -> int:
    """At most how many text tokens a server makes of the request's text and chat template."""
    text = sum(len(m.text.encode("utf-8")) for m in request.messages)
    return (
        TEMPLATE_TOKENS
        + TOKENS_PER_MESSAGE * len(request.messages)
        + TOKENS_PER_IMAGE * len(request.images)
        + text
    )


def reported_usage(response: Any, visual: int, estimate: int) -> TokenUsage:
    """What the server says the call spent (its ``usage``); the bound when it says nothing."""
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    if usage is None:
        # The server reported nothing: charge the bound rather than zero.
        logger.warning("the server returned no token usage; charging the estimate (%d tokens)", estimate)
        return TokenUsage(visual_tokens=visual, text_tokens=max(estimate - visual, 0), forward_passes=1)
    visual = min(visual, prompt) if prompt else visual
    return TokenUsage(
        visual_tokens=visual,
        text_tokens=max(prompt - visual, 0),
        generated_tokens=completion,
        forward_passes=1,
    )
