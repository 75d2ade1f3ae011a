"""Decoding free text: transformers' ``generate``, or the pruner's own loop when visual tokens are pruned.

Both read the log-probability the model gave each token it generated, from the raw logits (the model's own
distribution: before temperature, top-p or any other processor of the sampler).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from foveate.vlm.transformers_vlm.encoding import Encoded
from foveate.vlm.types import GenerationOptions

if TYPE_CHECKING:
    from foveate.vlm.pruning import PruneSpec
    from foveate.vlm.transformers_vlm.model import TransformersVLM

__all__ = ["Generated", "chosen_logprobs", "decode_kept", "kept_for_text", "new_tokens", "until_eos"]


@dataclass(frozen=True)
class Generated:
    """Tokens a model generated, and the natural-log probability it gave each (same length)."""

    tokens: list[int]
    logprobs: list[float]

    def __post_init__(self) -> None:
        if len(self.tokens) != len(self.logprobs):
            raise ValueError(f"{len(self.tokens)} tokens but {len(self.logprobs)} log-probabilities")

    def head(self, n: int) -> Generated:
        """The first ``n`` tokens and their log-probabilities."""
        return Generated(self.tokens[:n], self.logprobs[:n])


def new_tokens(
    vlm: TransformersVLM, enc: Encoded, opts: GenerationOptions, spec: PruneSpec | None
) -> Generated:
    """The generated tokens alone, with their log-probabilities. With pruning, by
    ``VisualTokenPruner.generate`` (its own cached loop: greedy, or temperature / top-p sampling; the model's
    other generation-config processors, e.g. a repetition penalty, are not applied there), which records on
    ``enc`` the visual tokens it computed.

    Without pruning, transformers' ``generate`` returns each step's raw logits (``output_logits``): one
    float32 row of the vocabulary per generated token, kept on the device until decoding ends (about 0.6 MB
    a token for Qwen2-VL's 152k-token vocabulary)."""
    if spec is not None:
        if opts.temperature > 0 and opts.seed is not None:
            torch.manual_seed(opts.seed)
        tokens, logprobs, state = vlm.pruner.generate(
            vlm.to_device(enc.inputs),
            spec,
            max_new_tokens=opts.max_new_tokens,
            eos=vlm.eos_ids,
            temperature=opts.temperature,
            top_p=opts.top_p,
        )
        enc.computed = state.computed_visual
        return Generated(tokens, logprobs)
    gen_kwargs: dict[str, Any] = {
        "max_new_tokens": opts.max_new_tokens,
        "do_sample": opts.temperature > 0,
        "pad_token_id": vlm.tokenizer.pad_token_id,
        "return_dict_in_generate": True,
        "output_logits": True,
    }
    if opts.temperature > 0:
        gen_kwargs.update(temperature=opts.temperature, top_p=opts.top_p)
        if opts.seed is not None:
            torch.manual_seed(opts.seed)
    else:
        gen_kwargs.update(temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = vlm.model.generate(**vlm.to_device(enc.inputs), **gen_kwargs)
        tokens = out.sequences[0, enc.inputs["input_ids"].shape[1] :]
        logprobs = chosen_logprobs(out.logits, tokens)
    return Generated([int(t) for t in tokens.tolist()], logprobs)


def chosen_logprobs(logits: Sequence[torch.Tensor], tokens: torch.Tensor) -> list[float]:
    """``log_softmax(logits[i])[tokens[i]]`` for each step ``i``: each step's logits of the one row, (1, V)
    or (V,), raw (before any processor or temperature)."""
    if len(logits) != len(tokens):
        raise ValueError(f"{len(logits)} steps of logits for {len(tokens)} tokens")
    if not len(tokens):
        return []
    picked = [
        torch.log_softmax(step.reshape(-1).float(), dim=-1)[int(tok)]
        for step, tok in zip(logits, tokens.tolist(), strict=True)
    ]
    return [float(lp) for lp in torch.stack(picked).cpu().tolist()]


def until_eos(generated: Generated, eos: set[int]) -> tuple[Generated, str]:
    """The tokens (and their log-probabilities) up to and including the first end-of-sequence one, and why
    decoding finished."""
    for i, tok in enumerate(generated.tokens):
        if tok in eos:
            return generated.head(i + 1), "stop"
    return generated, "length"


def kept_for_text(tokenizer: Any, tokens: Sequence[int], cut: int) -> int:
    """How many of ``tokens`` (no end-of-sequence among them) the first ``cut`` characters of their decoded
    text need: the fewest whose decoded text reaches ``cut`` characters, at least one.

    Used when a stop string cuts the text: the log-probabilities of those tokens are kept. Approximate: a
    token that straddles the cut (part answer, part stop string) is kept, and a tokenizer whose decoded
    prefixes are not prefixes of the whole decoded text (clean-up of spaces, bytes of one character split
    over tokens) may keep a token more or less."""
    if not tokens:
        return 0
    ids = list(tokens)
    first = bisect_left(
        range(1, len(ids) + 1), cut, key=lambda k: len(tokenizer.decode(ids[:k], skip_special_tokens=True))
    )
    return min(first + 1, len(ids))


def decode_kept(
    tokenizer: Any, kept: Generated, eos: set[int], stops: Sequence[str], finish: str
) -> tuple[str, str, Generated]:
    """The text of the kept tokens (end of sequence left out), cut at the first of ``stops`` it contains
    (then ``finish`` is ``stop`` and only the tokens the remaining text needs keep their log-probabilities,
    ``kept_for_text``); returns the text, why decoding finished, and the tokens kept."""
    words = [t for t in kept.tokens if t not in eos]
    text = tokenizer.decode(words, skip_special_tokens=True)
    cut_at_stop = False
    for stop in stops:
        cut = text.find(stop)
        if cut >= 0:
            text, finish, cut_at_stop = text[:cut], "stop", True
    if cut_at_stop and words:
        kept = kept.head(kept_for_text(tokenizer, words, len(text)))
    return text.strip(), finish, kept
