"""A model's context window: how many tokens one sequence (prompt and generated text) may hold.

Past it a model does not fail by itself: rotary positions extrapolate and the answer comes out anyway,
from a prompt the model was never trained to read (a 100 KB question, 24.8k tokens, was answered by the
tiny VLM, whose window is 4,096). So a local backend measures each prompt after tokenising and refuses one
that does not fit before any forward pass, and caps generation at the room left. A server enforces its own
window, and its refusal is read into the same error here; vLLM also refuses a prompt that fits when
prompt + ``max_tokens`` does not (the local backend would answer it, with fewer new tokens).
"""

from __future__ import annotations

import re
from typing import Any

from foveate.errors import ContextLengthError

__all__ = ["check_prompt_fits", "context_length_of", "is_context_refusal", "room_to_generate"]

# Where transformers configs keep the window, most specific first. Multimodal configs hold it in their
# language model's ``text_config``; a few old ones call it ``n_positions`` / ``max_sequence_length``.
_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")

# Servers' refusals of an over-long prompt. vLLM: "This model's maximum context length is 4096 tokens.
# However, you requested ..."; llama.cpp's server: "the request exceeds the available context size";
# OpenAI: "context_length_exceeded".
_REFUSAL = re.compile(
    r"maximum context length|context_length_exceeded|exceeds the available context size"
    r"|exceed_context_size|exceed context window|prompt is too long|longer than the maximum model length",
    re.IGNORECASE,
)


def context_length_of(config: Any) -> tuple[int, str] | None:
    """The window of a transformers config and the key it came from (``text_config.max_position_embeddings``),
    or None when the config names none."""
    for owner, prefix in ((getattr(config, "text_config", None), "text_config."), (config, "")):
        if owner is None:
            continue
        for key in _KEYS:
            value = getattr(owner, key, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value, prefix + key
    return None


def check_prompt_fits(length: int, window: int | None, model: str, source: str) -> None:
    """Refuse a prompt of ``length`` tokens that leaves no room for one generated token."""
    if window is not None and length >= window:
        raise ContextLengthError(
            f"the prompt is {length:,} tokens; model {model} reads at most {window:,} ({source}), with room "
            "for at least one generated token: shorten the question, its options or the workflow's prompts"
        )


def room_to_generate(length: int, asked: int, window: int | None) -> int:
    """How many tokens generation may add to a prompt of ``length`` tokens: ``asked``, capped at the
    window."""
    return asked if window is None else max(1, min(asked, window - length))


def is_context_refusal(text: str) -> bool:
    """Whether a server's error text says the prompt does not fit the model's window."""
    return bool(_REFUSAL.search(text))
