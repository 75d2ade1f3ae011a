"""Visual-token pruning (FasterVLM "cls", FastV "fastv") in TransformersVLM.

Checks compare against transformers itself: the stock forward pass and ``generate`` (keep=1.0 must be
identical), the eager attention weights transformers returns (the rankings), and LLaVA's own
``mm_encoder_outputs`` route fed with the pruned features (cls at keep < 1).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from foveate.errors import BudgetExceeded, UnsupportedRequestError
from foveate.fixtures import TINY_VLM_PATH, tiny_vlm_available
from foveate.fixtures.scenes import generate_scene
from foveate.vlm import TokenBudget, TokenLedger, TransformersVLM, VLMRequest
from foveate.vlm.pruning import PruneSpec, kept_count

RNG = np.random.default_rng(7)
PICTURES = [RNG.integers(0, 255, (120 + 20 * i, 150, 3), dtype=np.uint8) for i in range(3)]
METHODS = ("cls", "fastv")


def _ledger(method: str | None, keep: float = 1.0, layer: int = 2, **caps: int) -> TokenLedger:
    return TokenLedger(TokenBudget(prune=method, keep=keep, layer=layer, **caps))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def tiny_vlm() -> TransformersVLM:
    if not tiny_vlm_available():
        pytest.skip("the trained tiny VLM is not in this checkout")
    return TransformersVLM(TINY_VLM_PATH)


@pytest.fixture(scope="module")
def random_llava(tiny_model_dirs: dict[str, Path]) -> TransformersVLM:
    return TransformersVLM(tiny_model_dirs["llava"])


@pytest.fixture(scope="module")
def scene() -> tuple[np.ndarray, list[str], str]:
    image, item = generate_scene(7, 3)
    crop = np.asarray(image.crop((0, 0, 256, 256)))
    return crop, list(item.options), item.question


# ---------------------------------------------------------------------------- budget fields
def test_budget_defaults_and_validation() -> None:
    budget = TokenBudget()
    assert budget.prune is None and budget.keep == 1.0 and budget.layer == 2
    assert TokenBudget(prune="fastv", keep=0.25, layer=3).keep == 0.25
    for bad in ({"keep": 0.0}, {"keep": 1.5}, {"keep": -0.1}, {"layer": 0}, {"prune": "random"}):
        with pytest.raises(ValidationError):
            TokenBudget(**bad)  # type: ignore[arg-type]


def test_kept_count_is_ceiling_of_ratio() -> None:
    assert kept_count(64, 0.25) == 16
    assert kept_count(64, 0.1) == 7  # ceil(6.4)
    assert kept_count(640, 0.1) == 64  # not 65 from 0.1 * 640 = 64.00000000000001
    assert kept_count(576, 0.5) == 288
    assert kept_count(5, 0.01) == 1  # never drops every visual token
    assert kept_count(64, 1.0) == 64 and kept_count(0, 0.5) == 0


# ---------------------------------------------------------------------------- keep=1.0 is exact
@pytest.mark.parametrize("method", METHODS)
def test_keep_one_is_identical_to_no_pruning(
    tiny_vlm: TransformersVLM, scene: tuple[np.ndarray, list[str], str], method: str
) -> None:
    crop, options, question = scene
    req = VLMRequest.from_prompt(question, [crop])
    plain = tiny_vlm.score(req, options, TokenLedger())
    pruned = tiny_vlm.score(req, options, _ledger(method))
    assert np.allclose(plain.logprobs, pruned.logprobs, atol=1e-5)
    # multi-token options take the batched right-padded path
    long_options = ["red star", "green circle", "blue triangle"]
    plain = tiny_vlm.score(req, long_options, TokenLedger())
    pruned = tiny_vlm.score(req, long_options, _ledger(method))
    assert np.allclose(plain.logprobs, pruned.logprobs, atol=1e-5)
    probes = [
        VLMRequest.from_prompt(f"Is there a {c} star? Answer Yes or No.", [crop]) for c in ("red", "blue")
    ]
    plain_yes = tiny_vlm.yes_probabilities(probes, TokenLedger())
    pruned_yes = tiny_vlm.yes_probabilities(probes, _ledger(method))
    assert np.allclose([r.p_yes for r in plain_yes], [r.p_yes for r in pruned_yes], atol=1e-5)
    assert [r.usage for r in plain_yes] == [r.usage for r in pruned_yes]


@pytest.mark.parametrize("method", METHODS)
def test_keep_one_generate_matches_transformers_generate(random_llava: TransformersVLM, method: str) -> None:
    req = VLMRequest.from_prompt("Describe the image.", [PICTURES[0]], max_new_tokens=6)
    plain = random_llava.generate(req, TokenLedger())
    pruned = random_llava.generate(req, _ledger(method, layer=1))
    assert pruned.text == plain.text and pruned.usage == plain.usage


@pytest.mark.parametrize("method", METHODS)
def test_keep_one_logits_match_on_random_llava(random_llava: TransformersVLM, method: str) -> None:
    reqs = [
        VLMRequest.from_prompt(q, [p]) for q, p in zip(("What is it?", "Is it red?"), PICTURES, strict=False)
    ]
    enc = random_llava._encode([random_llava.render(r) for r in reqs], [r.images for r in reqs], "right")
    with torch.inference_mode():
        stock = random_llava.model(**enc.inputs, use_cache=False).logits.float()
    logits, state = random_llava.pruner.logits(enc.inputs, PruneSpec(method, 1.0, 1), 0)  # type: ignore[arg-type]
    for row, length in enumerate(enc.lengths):
        text = enc.inputs["input_ids"][row, :length] != random_llava.image_token_id
        assert torch.allclose(logits[row, :length][text], stock[row, :length][text], atol=1e-5)
    assert state.kept_visual == enc.visual


# ---------------------------------------------------------------------------- pruning really prunes
@pytest.mark.parametrize(("method", "keep"), [("cls", 0.25), ("cls", 0.1), ("fastv", 0.25), ("fastv", 0.5)])
def test_kept_count_and_ledger_match_the_ratio(
    tiny_vlm: TransformersVLM, scene: tuple[np.ndarray, list[str], str], method: str, keep: float
) -> None:
    crop, options, question = scene
    req = VLMRequest.from_prompt(question, [crop])
    enc = tiny_vlm._encode([tiny_vlm.render(req)], [req.images], "right")
    n = enc.visual[0]
    assert n == 64
    spec = PruneSpec(method, keep, 2)  # type: ignore[arg-type]
    state = tiny_vlm.pruner.prefill(enc.inputs, spec)
    kept = math.ceil(keep * n)
    assert state.kept_visual == [kept]
    # the language model's deepest layers really ran on text + kept tokens only
    assert state.hidden.shape[1] == enc.lengths[0] - n + kept
    depth = tiny_vlm.pruner.depth
    expected = kept if method == "cls" else math.ceil((2 * n + (depth - 2) * kept) / depth)
    ledger = _ledger(method, keep)
    result = tiny_vlm.score(req, options, ledger)
    assert result.usage.visual_tokens == expected == ledger.spent.visual_tokens
    assert result.usage.text_tokens == enc.lengths[0] - n
    plain = tiny_vlm.score(req, options, TokenLedger())
    assert not np.allclose(plain.logprobs, result.logprobs, atol=1e-4)  # something was dropped


def test_cls_ranking_is_clip_cls_attention(random_llava: TransformersVLM) -> None:
    enc = random_llava._encode(["<image>x"], [[Image.fromarray(PICTURES[1])]], "right")
    pixels = enc.inputs["pixel_values"]
    scores, _ = random_llava.pruner.cls_attention(pixels)
    tower = random_llava.model.model.vision_tower
    previous = random_llava.config._attn_implementation
    random_llava.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            out = tower(pixel_values=pixels, output_attentions=True, output_hidden_states=True)
    finally:
        random_llava.model.set_attn_implementation(previous)
    layer = random_llava.config.vision_feature_layer % len(out.hidden_states) - 1
    reference = out.attentions[layer].float().mean(dim=1)[:, 0, 1:]
    assert torch.allclose(scores, reference, atol=1e-6)


def test_cls_pruned_forward_matches_llava_with_pruned_features(random_llava: TransformersVLM) -> None:
    """keep < 1: our trimmed prompt equals LLaVA's own forward fed the kept features and trimmed ids."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    vlm = random_llava
    req = VLMRequest.from_prompt("What colour is it?", [PICTURES[2]])
    enc = vlm._encode([vlm.render(req)], [req.images], "right")
    logits, state = vlm.pruner.logits(enc.inputs, PruneSpec("cls", 0.25, 2), 1)
    with torch.inference_mode():
        features, kept = vlm.pruner._cls_pruned_features(enc.inputs["pixel_values"], 0.25)
        ids = enc.inputs["input_ids"][0]
        image_cols = (ids == vlm.image_token_id).nonzero().flatten()
        drop = set(image_cols[~kept[0]].tolist())
        trimmed = torch.tensor([[t for i, t in enumerate(ids.tolist()) if i not in drop]])
        reference = vlm.model(
            input_ids=trimmed,
            mm_encoder_outputs={"image": BaseModelOutputWithPooling(pooler_output=list(features))},  # type: ignore[arg-type]
            logits_to_keep=1,
            use_cache=False,
        ).logits.float()
    assert state.kept_visual == [math.ceil(0.25 * len(image_cols))]
    assert torch.allclose(logits[0, -1], reference[0, -1], atol=1e-5)


def test_fastv_drops_the_least_attended_tokens(random_llava: TransformersVLM) -> None:
    """The visual tokens FastV keeps are the top ones by transformers' own eager attention in layer K."""
    vlm = random_llava
    req = VLMRequest.from_prompt("Where is the dog?", [PICTURES[0]])
    enc = vlm._encode([vlm.render(req)], [req.images], "right")
    previous = vlm.config._attn_implementation
    vlm.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            out = vlm.model(**enc.inputs, output_attentions=True, use_cache=False)
    finally:
        vlm.model.set_attn_implementation(previous)
    layer = 1  # K = 1: the ranking comes from the attention of the first (only full) layer
    attention = out.attentions[layer - 1].float().mean(dim=1)[0, -1]
    image_cols = (enc.inputs["input_ids"][0] == vlm.image_token_id).nonzero().flatten()
    k = kept_count(len(image_cols), 0.25)
    expected = set(image_cols[attention[image_cols].topk(k).indices].tolist())
    state = vlm.pruner.prefill(enc.inputs, PruneSpec("fastv", 0.25, layer))
    kept_cols = {int(c) for c in state.columns[0][state.valid[0]]}
    assert kept_cols & set(image_cols.tolist()) == expected
    assert len(kept_cols) == enc.lengths[0] - len(image_cols) + k


def test_fastv_equals_masking_the_dropped_tokens(tiny_vlm: TransformersVLM) -> None:
    """Dropping tokens after layer K equals, for the last token, running the deeper layers of transformers'
    own forward on the full sequence with the dropped tokens masked out as keys (original positions)."""
    vlm, k = tiny_vlm, 2
    image, item = generate_scene(7, 4)
    req = VLMRequest.from_prompt(item.question, [image.crop((0, 0, 300, 300))])
    enc = vlm._encode([vlm.render(req)], [req.images], "right")
    spec = PruneSpec("fastv", 0.25, k)
    logits, state = vlm.pruner.logits(enc.inputs, spec, 1)
    lm = vlm.model.model.language_model
    length = enc.lengths[0]
    kept = torch.zeros(length, dtype=torch.bool)
    kept[state.columns[0][state.valid[0]]] = True
    allowed = torch.tril(torch.ones(length, length, dtype=torch.bool)) & kept[None, :]
    allowed |= torch.eye(length, dtype=torch.bool)  # dropped queries (never read) keep one key
    mask = torch.zeros(1, 1, length, length).masked_fill(~allowed, float("-inf"))
    with torch.inference_mode():
        out = vlm.model(**enc.inputs, output_hidden_states=True, use_cache=False)
        hidden = out.hidden_states[k]
        positions = torch.arange(length)[None, :]
        rope = lm.rotary_emb(hidden, position_ids=positions)
        for layer in lm.layers[k:]:
            hidden = layer(hidden, attention_mask=mask, position_ids=positions, position_embeddings=rope)
        reference = vlm.model.lm_head(lm.norm(hidden))[0, -1].float()
    assert torch.allclose(logits[0, -1], reference, atol=1e-4)
    assert not torch.allclose(logits[0, -1], out.logits[0, -1].float(), atol=1e-3)


@pytest.mark.parametrize("method", METHODS)
def test_pruned_generate_counts_kept_tokens(random_llava: TransformersVLM, method: str) -> None:
    req = VLMRequest.from_prompt("Describe the image.", [PICTURES[0]], max_new_tokens=5)
    ledger = _ledger(method, 0.25, layer=1)
    result = random_llava.generate(req, ledger)
    assert 1 <= result.usage.generated_tokens <= 5
    n = random_llava.token_spec.tokens_for(120, 150)  # type: ignore[union-attr]
    assert result.usage.visual_tokens < n and ledger.spent == result.usage


def test_pruning_lets_a_call_fit_a_budget_it_would_not(random_llava: TransformersVLM) -> None:
    req = VLMRequest.from_prompt("Is it red?", [PICTURES[0]])
    spent = random_llava.yes_probability(req, _ledger("cls", 0.25)).usage.total
    with pytest.raises(BudgetExceeded):
        random_llava.yes_probability(req, _ledger(None, max_total_tokens=spent))
    assert (
        random_llava.yes_probability(req, _ledger("cls", 0.25, max_total_tokens=spent)).usage.total == spent
    )


# ---------------------------------------------------------------------------- batching
@pytest.mark.parametrize("method", METHODS)
def test_pruning_composes_with_batching(tiny_vlm: TransformersVLM, method: str) -> None:
    image, _ = generate_scene(7, 5)
    views = [image.crop((x, y, x + 200, y + 260)) for x, y in ((0, 0), (300, 100), (600, 400))]
    questions = [
        ["Is there a red star? Answer Yes or No.", "Is there a blue circle? Answer Yes or No."],
        ["Is there a green square? Answer Yes or No."],
        ["Is there a yellow triangle in the zoomed-in view? Answer Yes or No.", "Is there a star?"],
    ]
    batched = tiny_vlm.probe_views(views, questions, _ledger(method, 0.25, layer=1))
    for view, qs, answers in zip(views, questions, batched, strict=True):
        for q, answer in zip(qs, answers, strict=True):
            alone = tiny_vlm.yes_probability(
                VLMRequest.from_prompt(q, [view]), _ledger(method, 0.25, layer=1)
            )
            assert abs(alone.p_yes - answer.p_yes) < 1e-5
            assert alone.usage.visual_tokens == answer.usage.visual_tokens < 64


def test_mixed_pruning_settings_in_one_call_keep_order(tiny_vlm: TransformersVLM) -> None:
    image, _ = generate_scene(7, 6)
    view = image.crop((0, 0, 256, 256))
    budgets = [TokenBudget(prune="cls", keep=0.25), None, TokenBudget(prune="fastv", keep=0.5)]
    reqs = [VLMRequest.from_prompt("Is there a red star?", [view], budget=b) for b in budgets]
    together = tiny_vlm.yes_probabilities(reqs)
    alone = [tiny_vlm.yes_probability(r) for r in reqs]
    assert [round(r.p_yes, 6) for r in together] == [round(r.p_yes, 6) for r in alone]
    assert [r.usage.visual_tokens for r in together] == [16, 64, math.ceil((2 * 64 + 2 * 32) / 4)]


# ---------------------------------------------------------------------------- unsupported
@pytest.mark.parametrize("arch", ["qwen2_vl", "idefics3"])
@pytest.mark.parametrize("method", METHODS)
def test_unsupported_model_raises_before_any_work(
    tiny_model_dirs: dict[str, Path], arch: str, method: str
) -> None:
    vlm = TransformersVLM(tiny_model_dirs[arch])
    ledger = _ledger(method, 0.5, layer=1)
    req = VLMRequest.from_prompt("Is it red?", [PICTURES[0]])
    with pytest.raises(UnsupportedRequestError, match=arch.replace("_", "_")) as info:
        vlm.yes_probability(req, ledger)
    assert vlm.model_id in str(info.value)
    with pytest.raises(UnsupportedRequestError):
        vlm.generate(req, ledger)
    assert ledger.calls == 0 and ledger.spent.total == 0


def test_fastv_layer_beyond_depth_is_refused(random_llava: TransformersVLM) -> None:
    depth = random_llava.pruner.depth
    with pytest.raises(UnsupportedRequestError, match="layer"):
        random_llava.score(
            VLMRequest.from_prompt("Is it?", [PICTURES[0]]), ["A", "B"], _ledger("fastv", 0.5, depth)
        )
