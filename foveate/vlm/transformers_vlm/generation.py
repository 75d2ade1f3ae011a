"""Decoding free text: transformers' ``generate``, or the pruner's own loop when visual tokens are pruned."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from foveate.vlm.transformers_vlm.encoding import Encoded
from foveate.vlm.types import GenerationOptions

if TYPE_CHECKING:
    from foveate.vlm.pruning import PruneSpec
    from foveate.vlm.transformers_vlm.model import TransformersVLM

__all__ = ["new_tokens", "until_eos"]


def new_tokens(
    vlm: TransformersVLM, enc: Encoded, opts: GenerationOptions, spec: PruneSpec | None
) -> torch.Tensor:
    """The generated tokens alone, (1, n). With pruning, by ``VisualTokenPruner.generate`` (its own cached
    loop: greedy, or temperature / top-p sampling; the model's other generation-config processors, e.g. a
    repetition penalty, are not applied there), which records on ``enc`` the visual tokens it computed."""
    if spec is not None:
        if opts.temperature > 0 and opts.seed is not None:
            torch.manual_seed(opts.seed)
        tokens, state = vlm.pruner.generate(
            vlm.to_device(enc.inputs),
            spec,
            max_new_tokens=opts.max_new_tokens,
            eos=vlm.eos_ids,
            temperature=opts.temperature,
            top_p=opts.top_p,
        )
        enc.computed = state.computed_visual
        return torch.tensor([tokens])
    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": opts.max_new_tokens,
        "do_sample": opts.temperature > 0,
        "pad_token_id": vlm.tokenizer.pad_token_id,
    }
    if opts.temperature > 0:
        gen_kwargs.update(temperature=opts.temperature, top_p=opts.top_p)
        if opts.seed is not None:
            torch.manual_seed(opts.seed)
    else:
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = vlm.model.generate(**vlm.to_device(enc.inputs), **gen_kwargs)
    return out[:, enc.inputs["input_ids"].shape[1] :].cpu()


def until_eos(tokens: list[int], eos: set[int]) -> tuple[list[int], str]:
    """The tokens up to and including the first end-of-sequence one, and why decoding finished."""
    for i, tok in enumerate(tokens):
        if tok in eos:
            return tokens[: i + 1], "stop"
    return tokens, "length"
