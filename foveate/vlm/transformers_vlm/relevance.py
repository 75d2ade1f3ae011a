"""Relevance maps: where in a view a local model looks for a question (ViCrop's rel-att, or plain attention).

How the attention over image tokens lays out as a grid is a fact of the family (``Family.relevance_grid``:
LLaVA's square patch grid, Qwen2-VL's merged patch grid); families without one have no maps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from foveate.errors import UnsupportedRequestError
from foveate.vlm.budget import TokenLedger, TokenUsage
from foveate.vlm.types import RelevanceMap, VLMRequest

if TYPE_CHECKING:
    from foveate.vlm.transformers_vlm.model import TransformersVLM

__all__ = ["GENERIC_PROMPT", "relevance_maps"]

GENERIC_PROMPT = "Write a general description of the image."


def relevance_maps(
    vlm: TransformersVLM,
    views: Sequence[Image.Image],
    questions: Sequence[str],
    ledger: TokenLedger | None = None,
    *,
    layer: int | None = None,
    normalize: bool = True,
) -> list[RelevanceMap]:
    """ViCrop's rel-att: the last token's attention over the image tokens for the question, divided by
    the same attention under a generic description prompt, averaged over heads, at a middle layer.

    ``normalize=False`` returns the question's attention alone (one prompt per view instead of two):
    the division removes attention a model pays some patches whatever it is asked (sinks), but when
    the model's generic attention already goes to the objects a question could name, as the embedded
    tiny VLM's does, it divides the signal away (see docs/benchmarks/zoom.md).
    All prompts go through one forward pass with eager attention (switched on only for this call).
    LLaVA-style (square patch grid) and Qwen2-VL (merged patch grid) are supported.
    """
    if len(views) != len(questions):
        raise UnsupportedRequestError("relevance_maps needs one question per view")
    family = vlm.family_facts
    if family is None or family.relevance_grid is None:
        raise UnsupportedRequestError(
            f"relevance maps are not implemented for {vlm.profile.family or 'this'} models"
        )
    grid_of = family.relevance_grid
    base = ledger if ledger is not None else TokenLedger()
    texts_per_view = 2 if normalize else 1
    cap = base.budget.max_visual_tokens_per_image  # the requests are built here, without budgets of their own
    requests = [
        vlm.fit_images(VLMRequest.from_prompt(text, images=[view]), cap)
        for view, q in zip(views, questions, strict=True)
        for text in ((q, GENERIC_PROMPT) if normalize else (q,))
    ]
    depth = vlm.profile.lm_depth or 2
    layer = depth // 2 if layer is None else layer
    maps: list[RelevanceMap] = []
    with vlm._lock:
        enc = vlm.encode([vlm.render(r) for r in requests], [r.images for r in requests], "right")
        with base.hold(sum(enc.lengths), "relevance_maps") as held:
            previous = vlm.config._attn_implementation
            vlm.model.set_attn_implementation("eager")
            try:
                with torch.inference_mode():
                    out = vlm.model(**vlm.to_device(enc.inputs), output_attentions=True, logits_to_keep=1)
            finally:
                vlm.model.set_attn_implementation(previous)
            attention = out.attentions[layer].float().mean(dim=1).cpu()  # (rows, query, key)
            usage = enc.usage
            held.commit(usage)
    ids = enc.inputs["input_ids"]
    for v in range(len(views)):
        rows = range(texts_per_view * v, texts_per_view * (v + 1))
        weights = []
        for row in rows:
            image_positions = (ids[row] == vlm.image_token_id).nonzero().flatten()
            weights.append(attention[row, enc.lengths[row] - 1, image_positions].numpy())
        ratio = weights[0] / np.maximum(weights[1], 1e-12) if normalize else weights[0]
        grid, region = grid_of(
            enc.inputs, rows[0], requests[rows[0]].images[0], len(ratio), vlm.profile.token_rule
        )
        maps.append(
            RelevanceMap(
                grid=ratio.reshape(grid),
                region=region,
                usage=TokenUsage(
                    visual_tokens=sum(enc.visual[r] for r in rows),
                    text_tokens=sum(enc.lengths[r] - enc.visual[r] for r in rows),
                    forward_passes=1 if v == 0 else 0,
                ),
            )
        )
    return maps
