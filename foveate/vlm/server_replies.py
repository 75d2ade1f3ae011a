"""Reading what an OpenAI-compatible server returns beyond the text: the generated tokens' log-probabilities.

Servers differ: vLLM returns ``choices[0].logprobs.content[i].logprob`` when asked (``logprobs: true``),
others return nothing, or values rounded a hair above 0. What cannot be read is None, never an error.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["generated_logprobs"]


def generated_logprobs(choice: Any) -> list[float] | None:
    """Each generated token's log-probability from ``choice.logprobs.content``; None when the server sent
    none or anything unreadable (never an error: the text stands without them). A value a hair above 0
    (the server's rounding) is read as 0."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if not content:
        return None
    try:
        values = [float(entry.logprob) for entry in content]
    except (AttributeError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in values):
        return None
    return [min(v, 0.0) for v in values]
