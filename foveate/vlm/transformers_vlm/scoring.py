"""Scoring answer options from real logits: which spellings to try, and options longer than one token.

An option is scored by its most likely spelling. When every spelling is one token, one forward pass of the
prompt reads them all (``TransformersVLM.score``); otherwise every spelling of every option goes through
right-padded batches (right padding keeps every row's positions identical to an unpadded run), all held on
the ledger before the first (``score_batched``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image

from foveate.errors import UnsupportedRequestError
from foveate.vlm.budget import TokenLedger, TokenUsage

if TYPE_CHECKING:
    from foveate.vlm.pruning import PruneSpec
    from foveate.vlm.transformers_vlm.model import TransformersVLM

__all__ = ["option_token_ids", "score_batched", "spellings"]


def spellings(option: str) -> list[str]:
    """How an answer may follow the generation prompt: as written, and after a space.

    Chat templates differ: Qwen's ends with a newline and answers start bare, LLaVA's ends with
    ``ASSISTANT:`` and Llama tokenizers emit the answer with a leading space. An option is scored
    by its most likely spelling, so the option that greedy decoding would emit ranks first.
    """
    return [option] if option[:1].isspace() else [option, " " + option]


def option_token_ids(tokenizer: Any, prompt: str, options: Sequence[str]) -> list[list[int]]:
    """Each option's tokens as they follow the prompt (tokenised in context, not alone)."""
    text_prompt = tokenizer.encode(prompt, add_special_tokens=False)
    result = []
    for option in options:
        full = tokenizer.encode(prompt + option, add_special_tokens=False)
        common = 0
        while common < min(len(full), len(text_prompt)) and full[common] == text_prompt[common]:
            common += 1
        ids = full[common:]
        if common < len(text_prompt) or not ids:
            raise UnsupportedRequestError(
                f"option {option!r} merges with the end of the prompt when tokenised; "
                "use options that start a new token (e.g. 'A', 'B', ...)"
            )
        result.append(ids)
    return result


def score_batched(
    vlm: TransformersVLM,
    prompt: str,
    images: list[Image.Image],
    options: Sequence[str],
    ledger: TokenLedger,
    spec: PruneSpec | None = None,
) -> tuple[list[float], TokenUsage]:
    """Summed log-probability of each option's tokens after ``prompt``, in batches of the model's size."""
    prompt_ids = vlm.processor(text=[prompt], images=[images] if images else None, return_tensors="pt")[
        "input_ids"
    ][0]
    prefix = len(prompt_ids)
    size = vlm.profile.max_batch_size
    chunks = [list(options[lo : lo + size]) for lo in range(0, len(options), size)]
    encs = [
        vlm._plan(
            vlm.encode([prompt + o for o in chunk], [images] * len(chunk), "right"),
            [len(images)] * len(chunk),
            spec,
        )
        for chunk in chunks
    ]
    usage = TokenUsage.sum(enc.usage for enc in encs)
    scores: list[float] = []
    with ledger.hold(usage.total, "score") as held:
        for enc in encs:
            ids = enc.inputs["input_ids"]
            if not bool((ids[:, :prefix] == prompt_ids).all()):
                raise UnsupportedRequestError("an option changed how the prompt itself is tokenised")
            keep = torch.arange(prefix - 1, ids.shape[1] - 1)
            logp = torch.log_softmax(vlm._logits(enc, keep=keep, spec=spec), dim=-1)
            for row, length in enumerate(enc.lengths):
                targets = ids[row, prefix:length]
                picked = logp[row, : length - prefix].gather(-1, targets.unsqueeze(-1))
                scores.append(float(picked.sum()))
        usage = TokenUsage.sum(enc.usage for enc in encs)  # what the model really computed
        held.commit(usage)
    return scores, usage
