"""Yes/No probes about several views, each view's image and template prefix encoded once.

Two forward passes in all (per ``max_batch_size`` chunk): one over the views' shared prefixes (vision
tower included), one over every question's own tokens, attending to its view's cached prefix. The
probabilities equal those of ``yes_probabilities`` up to float rounding (tested). Only for families whose
forward pass can continue from a cached prefix with plain input ids (``Family.prefix_reuse``: no per-image
rotary state, as Qwen2-VL's M-RoPE has).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from PIL import Image

from foveate.errors import UnsupportedRequestError
from foveate.vlm.budget import TokenLedger, TokenUsage
from foveate.vlm.types import VLMRequest, YesNoResult

if TYPE_CHECKING:
    from foveate.vlm.transformers_vlm.model import TransformersVLM

__all__ = ["probe_views_sharing_prefix"]


def probe_views_sharing_prefix(
    vlm: TransformersVLM,
    views: Sequence[Image.Image],
    questions: Sequence[Sequence[str]],
    ledger: TokenLedger | None = None,
) -> list[list[YesNoResult]]:
    """``questions[i]`` about ``views[i]``, each view encoded once and shared by its questions."""
    if not vlm.no_ids:
        raise UnsupportedRequestError(f"the tokenizer of {vlm.model_id} has no single token for No")
    base = ledger if ledger is not None else TokenLedger()
    cap = base.budget.max_visual_tokens_per_image  # the requests are built here, without budgets of their own
    requests = [
        [vlm.fit_images(VLMRequest.from_prompt(q, images=[v]), cap) for q in qs]
        for v, qs in zip(views, questions, strict=True)
    ]
    results: list[list[YesNoResult]] = [[] for _ in views]
    order = [i for i, qs in enumerate(questions) if qs]
    size = vlm.profile.max_batch_size
    with vlm._lock:
        for lo in range(0, len(order), size):
            chunk = order[lo : lo + size]
            for index, answers in zip(
                chunk, _probe_chunk(vlm, [requests[i] for i in chunk], base), strict=True
            ):
                results[index] = answers
    return results


def _probe_chunk(
    vlm: TransformersVLM, groups: list[list[VLMRequest]], ledger: TokenLedger
) -> list[list[YesNoResult]]:
    """One chunk of views: their prefixes in one pass, every question's suffix in a second."""
    texts = [vlm.render(r) for group in groups for r in group]
    images = [r.images for group in groups for r in group]
    enc = vlm.encode(texts, images, "right")
    ids = enc.inputs["input_ids"]
    owners = torch.tensor([g for g, group in enumerate(groups) for _ in group])
    firsts = [int((owners == g).nonzero()[0]) for g in range(len(groups))]
    # the longest prefix every row shares with its view's first row (image and template)
    prefix = min(enc.lengths) - 1
    for row in range(len(ids)):
        differs = (ids[row, :prefix] != ids[firsts[int(owners[row])], :prefix]).nonzero()
        if len(differs):
            prefix = int(differs[0])
    if prefix <= 0 or bool((ids[:, prefix:] == vlm.image_token_id).any()):
        flat = [r for group in groups for r in group]
        whole = vlm.yes_probabilities(flat, ledger)
        return [whole[firsts[g] : firsts[g] + len(groups[g])] for g in range(len(groups))]
    suffix_lengths = [n - prefix for n in enc.lengths]
    visual = [enc.visual[i] for i in firsts]
    total = sum(prefix for _ in firsts) + sum(suffix_lengths)
    with ledger.hold(total, "probe_views") as held:
        start = time.perf_counter()
        first_idx = torch.tensor(firsts)
        prefix_inputs = {
            key: (
                value[first_idx] if isinstance(value, torch.Tensor) and value.shape[0] == len(ids) else value
            )
            for key, value in enc.inputs.items()
        }
        prefix_inputs["input_ids"] = ids[first_idx, :prefix]
        prefix_inputs["attention_mask"] = torch.ones(len(firsts), prefix, dtype=torch.long)
        with torch.inference_mode():
            out = vlm.model(**vlm.to_device(prefix_inputs), use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            cache.batch_select_indices(owners.to(vlm.device))
            suffix = ids[:, prefix:]
            mask = torch.cat(
                [
                    torch.ones(len(ids), prefix, dtype=torch.long),
                    enc.inputs["attention_mask"][:, prefix:],
                ],
                dim=1,
            )
            last = torch.tensor([n - 1 for n in suffix_lengths])
            positions = torch.unique(last)
            logits = vlm.model(
                input_ids=suffix.to(vlm.device),
                attention_mask=mask.to(vlm.device),
                past_key_values=cache,
                logits_to_keep=positions.to(vlm.device),
                use_cache=False,
            ).logits.float()
        logp = torch.log_softmax(logits, dim=-1).cpu()
        column = torch.searchsorted(positions, last)
        latency = (time.perf_counter() - start) / len(ids)
        answers: list[list[YesNoResult]] = [[] for _ in groups]
        for row in range(len(ids)):
            g = int(owners[row])
            lead = row == firsts[g]
            usage = TokenUsage(
                visual_tokens=visual[g] if lead else 0,
                text_tokens=suffix_lengths[row] + (prefix - visual[g] if lead else 0),
                forward_passes=(2 if g == 0 else 0) if lead else 0,
            )
            answers[g].append(vlm._yes_no(logp[row, column[row]], usage, latency))
        held.commit(TokenUsage.sum(a.usage for group in answers for a in group))
    return answers
