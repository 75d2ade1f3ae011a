"""Visual-token pruning (FasterVLM "cls", FastV "fastv") in TransformersVLM.

Checks compare against transformers itself: the stock forward pass and ``generate`` (keep=1.0 must be
identical), the eager attention weights transformers returns (the rankings), LLaVA's own
``mm_encoder_outputs`` route fed with the pruned features (cls at keep < 1), and, for FastV at keep < 1,
the stock model's deeper layers run on the whole sequence with the dropped tokens masked out (LLaVA's
positions, and Qwen2-VL's M-RoPE positions from its own ``get_rope_index``, generated tokens included).
Every Qwen2-VL test also runs on a tiny random Qwen2.5-VL (same processor and prompt layout, its own
model classes: window-attention vision tower, its own ``get_rope_index``).
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
from foveate.synthetic import generate_scene
from foveate.testing.tiny_models import build_tiny_qwen25vl
from foveate.tiny_vlm import TINY_VLM_PATH, tiny_vlm_available
from foveate.vlm import TokenBudget, TokenLedger, TransformersVLM, VLMRequest
from foveate.vlm.pruning import PruneSpec, kept_count

RNG = np.random.default_rng(7)
PICTURES = [RNG.integers(0, 255, (120 + 20 * i, 150, 3), dtype=np.uint8) for i in range(3)]
METHODS = ("cls", "fastv")
QWEN_FAMILIES = ("qwen2_vl", "qwen2_5_vl")


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
def model_dirs(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The session's tiny models plus a tiny Qwen2.5-VL (not one of the processor families)."""
    qwen25 = build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-qwen25") / "qwen2_5_vl", seed=0)
    return {**tiny_model_dirs, "qwen2_5_vl": qwen25}


@pytest.fixture(scope="module", params=QWEN_FAMILIES)
def random_qwen2vl(model_dirs: dict[str, Path], request: pytest.FixtureRequest) -> TransformersVLM:
    """The random Qwen2-VL, then the random Qwen2.5-VL: every test using it runs on both."""
    vlm = TransformersVLM(model_dirs[request.param], device="cpu")
    assert vlm.model_type == request.param
    return vlm


@pytest.fixture(scope="module", params=QWEN_FAMILIES)
def sharp_qwen2vl(model_dirs: dict[str, Path], request: pytest.FixtureRequest) -> TransformersVLM:
    """The random Qwen2-VL (or Qwen2.5-VL) with its query and key projections scaled up 8x. At random
    init attention is nearly uniform, so greedy text hardly depends on rotary positions; sharp attention
    makes a token at a wrong position change the generated text, which the generation tests need to
    catch."""
    vlm = TransformersVLM(model_dirs[request.param], device="cpu")
    with torch.no_grad():
        for layer in vlm.model.model.language_model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
                proj.weight.mul_(8.0)
                proj.bias.mul_(8.0)
    return vlm


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
    # the pruner's own loop reads the same token log-probabilities as transformers' generate
    assert plain.token_logprobs is not None and len(plain.token_logprobs) == plain.usage.generated_tokens
    assert pruned.token_logprobs == pytest.approx(plain.token_logprobs, abs=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_keep_one_logits_match_on_random_llava(random_llava: TransformersVLM, method: str) -> None:
    reqs = [
        VLMRequest.from_prompt(q, [p]) for q, p in zip(("What is it?", "Is it red?"), PICTURES, strict=False)
    ]
    enc = random_llava.encode([random_llava.render(r) for r in reqs], [r.images for r in reqs], "right")
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
    enc = tiny_vlm.encode([tiny_vlm.render(req)], [req.images], "right")
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
    enc = random_llava.encode(["<image>x"], [[Image.fromarray(PICTURES[1])]], "right")
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
    enc = vlm.encode([vlm.render(req)], [req.images], "right")
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


def _assert_fastv_keeps_the_most_attended(vlm: TransformersVLM, req: VLMRequest) -> None:
    """At K = 1 the kept visual tokens are the top ones by transformers' own eager attention in the first
    layer (the last prompt token's, head-averaged), and every text token is kept."""
    enc = vlm.encode([vlm.render(req)], [req.images], "right")
    previous = vlm.config._attn_implementation
    vlm.model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            out = vlm.model(**enc.inputs, output_attentions=True, use_cache=False)
    finally:
        vlm.model.set_attn_implementation(previous)
    attention = out.attentions[0].float().mean(dim=1)[0, -1]
    image_cols = (enc.inputs["input_ids"][0] == vlm.image_token_id).nonzero().flatten()
    k = kept_count(len(image_cols), 0.25)
    expected = set(image_cols[attention[image_cols].topk(k).indices].tolist())
    state = vlm.pruner.prefill(enc.inputs, PruneSpec("fastv", 0.25, 1))
    kept_cols = {int(c) for c in state.columns[0][state.valid[0]]}
    assert kept_cols & set(image_cols.tolist()) == expected
    assert len(kept_cols) == enc.lengths[0] - len(image_cols) + k


def test_fastv_drops_the_least_attended_tokens(random_llava: TransformersVLM) -> None:
    """The visual tokens FastV keeps are the top ones by transformers' own eager attention in layer K."""
    _assert_fastv_keeps_the_most_attended(
        random_llava, VLMRequest.from_prompt("Where is the dog?", [PICTURES[0]])
    )


def test_fastv_equals_masking_the_dropped_tokens(tiny_vlm: TransformersVLM) -> None:
    """Dropping tokens after layer K equals, for the last token, running the deeper layers of transformers'
    own forward on the full sequence with the dropped tokens masked out as keys (original positions)."""
    vlm, k = tiny_vlm, 2
    image, item = generate_scene(7, 4)
    req = VLMRequest.from_prompt(item.question, [image.crop((0, 0, 300, 300))])
    enc = vlm.encode([vlm.render(req)], [req.images], "right")
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
    n = random_llava.profile.token_rule.tokens_for(120, 150)  # type: ignore[union-attr]
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


# ---------------------------------------------------------------- Qwen2-VL and Qwen2.5-VL (M-RoPE), fastv
def _qwen_requests(prompts: tuple[str, ...]) -> list[VLMRequest]:
    """Prompts with pictures of different sizes, so rows differ in visual and total length."""
    return [VLMRequest.from_prompt(q, [p]) for q, p in zip(prompts, PICTURES, strict=False)]


def _stock_qwen_tail(
    vlm: TransformersVLM, inputs: dict[str, torch.Tensor], kept: torch.Tensor, k: int
) -> torch.Tensor:
    """Logits of transformers' own Qwen2(.5)-VL forward whose layers from ``k`` on see only the ``kept``
    columns as keys (one row), every token at the M-RoPE position ``get_rope_index`` gives it."""
    lm = vlm.model.model.language_model
    length = inputs["input_ids"].shape[1]
    allowed = torch.tril(torch.ones(length, length, dtype=torch.bool)) & kept[None, :]
    allowed |= torch.eye(length, dtype=torch.bool)  # dropped queries (never read) keep one key
    mask = torch.zeros(1, 1, length, length).masked_fill(~allowed, float("-inf"))
    with torch.inference_mode():
        hidden = vlm.model(**inputs, output_hidden_states=True, use_cache=False).hidden_states[k]
        positions, _ = vlm.model.model.get_rope_index(
            inputs["input_ids"],
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs["image_grid_thw"],
        )
        rope = lm.rotary_emb(hidden, position_ids=positions)
        for layer in lm.layers[k:]:
            hidden = layer(hidden, attention_mask=mask, position_embeddings=rope)
        return vlm.model.lm_head(lm.norm(hidden))[0].float()


@pytest.mark.parametrize("side", ["right", "left"])
def test_qwen2vl_keep_one_logits_match_stock_forward(random_qwen2vl: TransformersVLM, side: str) -> None:
    vlm = random_qwen2vl
    reqs = _qwen_requests(("What is it?", "Is it red? Answer in one word."))
    enc = vlm.encode([vlm.render(r) for r in reqs], [r.images for r in reqs], side)
    assert len(set(enc.lengths)) == 2 and len(set(enc.visual)) == 2  # really padded, different images
    with torch.inference_mode():
        stock = vlm.model(**enc.inputs, use_cache=False).logits.float()
    logits, state = vlm.pruner.logits(enc.inputs, PruneSpec("fastv", 1.0, 1), 0)
    read = enc.inputs["attention_mask"].bool() & (enc.inputs["input_ids"] != vlm.image_token_id)
    assert torch.allclose(logits[read], stock[read], atol=1e-5)
    assert state.kept_visual == enc.visual


def test_qwen2vl_keep_one_scores_match_no_pruning(random_qwen2vl: TransformersVLM) -> None:
    vlm = random_qwen2vl
    req = _qwen_requests(("Which shape is it?",))[0]
    for options in (["A", "B", "C"], ["red star", "green circle", "blue triangle"]):
        plain = vlm.score(req, options, TokenLedger())
        pruned = vlm.score(req, options, _ledger("fastv", layer=1))
        assert np.allclose(plain.logprobs, pruned.logprobs, atol=1e-5)
        assert plain.usage == pruned.usage
    probes = _qwen_requests(("Is it red? Answer Yes or No.", "Is there a dog in this picture?"))
    plain_yes = vlm.yes_probabilities(probes, TokenLedger())
    pruned_yes = vlm.yes_probabilities(probes, _ledger("fastv", layer=1))
    assert np.allclose([r.p_yes for r in plain_yes], [r.p_yes for r in pruned_yes], atol=1e-5)
    assert [r.usage for r in plain_yes] == [r.usage for r in pruned_yes]


def test_qwen2vl_keep_one_generate_matches_transformers_generate(sharp_qwen2vl: TransformersVLM) -> None:
    """New tokens must sit where ``rope_deltas`` puts them (after the prompt's largest M-RoPE position,
    not after its length): numbering them from the prompt's length changes this model's greedy text."""
    for picture in PICTURES[:2]:
        req = VLMRequest.from_prompt("Describe the image.", [picture], max_new_tokens=8)
        plain = sharp_qwen2vl.generate(req, TokenLedger())
        pruned = sharp_qwen2vl.generate(req, _ledger("fastv", layer=1))
        assert plain.usage.generated_tokens == 8
        assert pruned.text == plain.text and pruned.usage == plain.usage
        assert pruned.token_logprobs == pytest.approx(plain.token_logprobs, abs=1e-4)


@pytest.mark.parametrize("keep", [0.25, 0.5])
def test_qwen2vl_kept_count_positions_and_ledger(random_qwen2vl: TransformersVLM, keep: float) -> None:
    vlm = random_qwen2vl
    req = _qwen_requests(("What colour is the picture?",))[0]
    enc = vlm.encode([vlm.render(req)], [req.images], "right")
    n, length = enc.visual[0], enc.lengths[0]
    state = vlm.pruner.prefill(enc.inputs, PruneSpec("fastv", keep, 1))
    kept = kept_count(n, keep)
    assert 0 < kept < n and state.kept_visual == [kept]
    assert state.hidden.shape[1] == length - n + kept  # the deeper layer really ran on fewer tokens
    # kept tokens carry their original 3-D positions, not renumbered ones
    full, _ = vlm.model.model.get_rope_index(
        enc.inputs["input_ids"],
        mm_token_type_ids=enc.inputs["mm_token_type_ids"],
        image_grid_thw=enc.inputs["image_grid_thw"],
    )
    columns = state.columns[0][state.valid[0]]
    assert torch.equal(state.positions[0][state.valid[0]], full[:, 0, columns].T)
    depth = vlm.pruner.depth
    ledger = _ledger("fastv", keep, layer=1)
    result = vlm.score(req, ["A", "B"], ledger)
    assert (
        result.usage.visual_tokens
        == math.ceil((n + (depth - 1) * kept) / depth)
        == ledger.spent.visual_tokens
    )
    assert result.usage.text_tokens == length - n


def test_qwen2vl_fastv_drops_the_least_attended_tokens(random_qwen2vl: TransformersVLM) -> None:
    """The kept visual tokens are the top ones by transformers' own eager attention (M-RoPE applied)."""
    _assert_fastv_keeps_the_most_attended(random_qwen2vl, _qwen_requests(("Where is the dog?",))[0])


def test_qwen2vl_fastv_equals_masking_the_dropped_tokens(random_qwen2vl: TransformersVLM) -> None:
    """keep < 1: the pruned prefill's logits equal the stock forward whose deeper layers mask the dropped
    tokens out as keys, at the original M-RoPE positions."""
    vlm = random_qwen2vl
    req = _qwen_requests(("What is in the middle?",))[0]
    enc = vlm.encode([vlm.render(req)], [req.images], "right")
    logits, state = vlm.pruner.logits(enc.inputs, PruneSpec("fastv", 0.25, 1), 1)
    kept = torch.zeros(enc.lengths[0], dtype=torch.bool)
    kept[state.columns[0][state.valid[0]]] = True
    reference = _stock_qwen_tail(vlm, enc.inputs, kept, 1)
    assert torch.allclose(logits[0, -1], reference[-1], atol=1e-4)
    with torch.inference_mode():
        plain = vlm.model(**enc.inputs, use_cache=False, logits_to_keep=1).logits[0, -1].float()
    assert not torch.allclose(logits[0, -1], plain, atol=1e-3)  # something was dropped


def test_qwen2vl_pruned_generate_continues_unpruned_positions(sharp_qwen2vl: TransformersVLM) -> None:
    """keep < 1: each greedy token equals the argmax of the stock model fed the prompt and the tokens so
    far, deeper layers masking the dropped tokens, positions as for the unpruned prompt."""
    vlm = sharp_qwen2vl
    req = VLMRequest.from_prompt("Describe the image.", [PICTURES[1]], max_new_tokens=6)
    enc = vlm.encode([vlm.render(req)], [req.images], "left")
    tokens, logprobs, state = vlm.pruner.generate(
        enc.inputs, PruneSpec("fastv", 0.25, 1), max_new_tokens=6, eos=set()
    )
    assert len(tokens) == len(logprobs) == 6
    length = enc.lengths[0]
    extra = torch.tensor([tokens[:-1]])
    inputs = dict(enc.inputs)
    inputs["input_ids"] = torch.cat([enc.inputs["input_ids"], extra], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    inputs["mm_token_type_ids"] = torch.cat([enc.inputs["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
    kept = torch.ones(inputs["input_ids"].shape[1], dtype=torch.bool)
    kept[:length] = False
    kept[state.columns[0][state.valid[0]]] = True
    reference = _stock_qwen_tail(vlm, inputs, kept, 1)
    assert reference[length - 1 :].argmax(dim=-1).tolist() == tokens
    # each token's log-probability is the pruned model's own, at that token
    want = torch.log_softmax(reference[length - 1 :], dim=-1).gather(-1, torch.tensor(tokens)[:, None])
    assert logprobs == pytest.approx(want.squeeze(-1).tolist(), abs=1e-4)


def test_qwen2vl_pruning_composes_with_batching(random_qwen2vl: TransformersVLM) -> None:
    vlm = random_qwen2vl
    probes = _qwen_requests(
        ("Is it red? Answer Yes or No.", "Is there a dog?", "Is the picture taken outdoors at night?")
    )
    batched = vlm.yes_probabilities(probes, _ledger("fastv", 0.25, layer=1))
    for probe, answer in zip(probes, batched, strict=True):
        alone = vlm.yes_probability(probe, _ledger("fastv", 0.25, layer=1))
        assert abs(alone.p_yes - answer.p_yes) < 1e-5
        assert alone.usage.visual_tokens == answer.usage.visual_tokens
    assert len({a.usage.visual_tokens for a in batched}) == 3  # three different images, all pruned
    # multi-token options go through one right-padded batch of rows of different lengths
    req = _qwen_requests(("Which shape is it?",))[0]
    options = ["red star", "green circle with a dot", "blue"]
    together = vlm.score(req, options, _ledger("fastv", 0.25, layer=1))
    for option, logprob in zip(options, together.logprobs, strict=True):
        alone_score = vlm.score(req, [option], _ledger("fastv", 0.25, layer=1))
        assert abs(alone_score.logprobs[0] - logprob) < 1e-5


# ---------------------------------------------------------------------------- unsupported
@pytest.mark.parametrize(
    ("arch", "method"),
    [("qwen2_vl", "cls"), ("qwen2_5_vl", "cls"), ("idefics3", "cls"), ("idefics3", "fastv")],
)
def test_unsupported_model_raises_before_any_work(
    model_dirs: dict[str, Path], arch: str, method: str
) -> None:
    vlm = TransformersVLM(model_dirs[arch])
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
