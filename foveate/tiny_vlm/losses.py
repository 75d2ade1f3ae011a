"""The tiny VLM's losses and held-out check: the answer loss, attention focus, accuracy per question kind."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from foveate.synthetic import COLORS, SHAPES
from foveate.tiny_vlm.recipe import Batcher
from foveate.tiny_vlm.tasks import Example

__all__ = ["answer_loss", "evaluate", "focus_loss", "warmup_cosine"]


def focus_loss(
    attentions: torch.Tensor,
    input_ids: torch.Tensor,
    lengths: torch.Tensor,
    focus: torch.Tensor,
    image_id: int,
) -> torch.Tensor | None:
    """-log of the attention mass the answer-predicting token puts on the named objects' patches.

    ``attentions`` is one layer's (batch, heads, query, key) weights; the query is the prompt's last token
    (answer and end-of-sequence follow it in training rows), the mass is taken over the image tokens only
    and averaged over heads, exactly what ``TransformersVLM.relevance_maps`` reads at inference. Real VLMs
    attend to what a question names (ViCrop's finding); a tiny model trained only on answers learns to read
    pooled features instead, so without this its attention maps localise weakly (numbers below).
    Rows whose question names nothing in view carry no loss.

    Used in the focusing phase (weight ``focus_phase_weight``). One-off checks on this machine (100 held-out
    scenes, seed 7; pick = how often the child holding the target is ranked first among 4 on 1000 / 500 /
    250 px views): the weights before focusing picked it by latent probe 32% / 66% / 79% and by plain
    layer-2 attention 24% / 40% / 58%; after focusing 45% / 77% / 92% and 32% / 66% / 85%. Earlier runs
    with it on from the first step (1000 scenes, 4 epochs) localised as well but learned left / right
    poorly or not at all (relation on crops 0.727; 0.50-0.53 with it on the search probes only).
    """
    rows = focus.any(dim=1).nonzero().flatten()
    if len(rows) == 0:
        return None
    losses = []
    for row in rows.tolist():
        image_positions = (input_ids[row] == image_id).nonzero().flatten()
        weights = attentions[row, :, int(lengths[row]) - 3, image_positions].mean(dim=0)
        on_target = weights[focus[row, : len(image_positions)]].sum()
        losses.append(-torch.log(on_target / weights.sum().clamp_min(1e-9) + 1e-6))
    return torch.stack(losses).mean()


@torch.inference_mode()
def evaluate(model: Any, batcher: Batcher, examples: list[Example], batch_size: int = 64) -> dict[str, float]:
    """Accuracy per question kind (``hard/<kind>`` for the harder world's examples): the answer word with
    the highest next-token logit among the candidates."""
    model.eval()
    tok = batcher.tokenizer
    candidates: dict[str, list[str]] = {
        "existence": ["Yes", "No"],
        "latent": ["Yes", "No"],
        "answerable": ["Yes", "No"],
        "relation": ["left", "right"],
        "side": ["left", "right"],
        "attribute": list(COLORS),
        "shape": list(SHAPES),
    }
    ids = {k: [tok.encode(w, add_special_tokens=False)[0] for w in v] for k, v in candidates.items()}
    hits: dict[str, list[bool]] = defaultdict(list)
    for lo in range(0, len(examples), batch_size):
        chunk = examples[lo : lo + batch_size]
        enc = batcher.encode([batcher.prompt(ex.question) for ex in chunk], chunk)
        last = enc["attention_mask"].sum(dim=1) - 1
        logits = model(**{k: v.to(model.device) for k, v in enc.items()}).logits.cpu()
        for row, ex in enumerate(chunk):
            options = candidates[ex.kind]
            scores = logits[row, last[row], ids[ex.kind]]
            key = ex.kind if ex.world == "plain" else f"{ex.world}/{ex.kind}"
            hits[key].append(options[int(scores.argmax())] == ex.answer)
    model.train()
    return {kind: float(np.mean(v)) for kind, v in sorted(hits.items())}


def warmup_cosine(total: int) -> Callable[[int], float]:
    """Learning-rate factor: linear warm-up over the first 5% of ``total`` steps, then cosine decay to 0."""
    warmup = max(1, total // 20)

    def factor(step: int) -> float:
        return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))

    return factor


def answer_loss(
    model: Any, inputs: dict[str, torch.Tensor], output_attentions: bool
) -> tuple[torch.Tensor, Any]:
    """Cross-entropy on the answer and end-of-sequence tokens, with the LM head run on those rows only.

    Equal to the ``labels`` loss of ``LlavaForConditionalGeneration`` on right-padded rows whose labels are
    the last two tokens (the Batcher's layout), but the vocabulary projection and its log-softmax run on 2
    positions per row instead of all of them (a 12-batch micro-benchmark: 0.197 s against 0.297 s per step;
    full runs gained less, 0.22 s per step over both phases against 0.275 s for the last run with the old
    loss).
    """
    lengths = inputs["attention_mask"].sum(dim=1)
    out = model.model(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        pixel_values=inputs["pixel_values"],
        output_attentions=output_attentions,
    )
    rows = torch.arange(len(lengths), device=lengths.device)[:, None]
    predicting = torch.stack([lengths - 3, lengths - 2], dim=1)  # the tokens before answer and EOS
    logits = model.lm_head(out.last_hidden_state[rows, predicting]).float()
    targets = inputs["input_ids"][rows, predicting + 1]
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    return loss, out
