"""TransformersVLM on tiny random-weight LLaVA, Qwen2-VL and Idefics3 models, loaded from disk.

Every check compares our backend with something independent of it: the greedy decoder of
transformers, a plain forward pass through the model, the processor's own token count, or
a forward hook on the real model.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from foveate.errors import BudgetExceeded, ModelLoadError
from foveate.synthetic import generate_scene
from foveate.testing.tiny_models import TINY_ARCHITECTURES
from foveate.tiny_vlm import TINY_VLM_PATH, tiny_vlm_available
from foveate.vlm import TokenBudget, TokenLedger, TransformersVLM, VLMRequest
from foveate.vlm.transformers_vlm.relevance import GENERIC_PROMPT

RNG = np.random.default_rng(1234)
PICTURE = RNG.integers(0, 255, (300, 400, 3), dtype=np.uint8)
SMALL = RNG.integers(0, 255, (90, 60, 3), dtype=np.uint8)


@pytest.fixture(scope="module", params=TINY_ARCHITECTURES)
def vlm(request: pytest.FixtureRequest, tiny_model_dirs: dict[str, Path]) -> TransformersVLM:
    return TransformersVLM(tiny_model_dirs[request.param])


def _forward_count(vlm: TransformersVLM) -> list[int]:
    calls = [0]
    vlm.model.register_forward_pre_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_loads_through_public_loader_on_cpu(vlm: TransformersVLM) -> None:
    assert vlm.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert vlm.model_type in ("llava", "qwen2_vl", "idefics3")
    assert vlm.profile.token_rule is not None


def test_generate_reports_real_usage(vlm: TransformersVLM) -> None:
    req = VLMRequest.from_prompt("Describe the image.", [PICTURE], max_new_tokens=4)
    result = vlm.generate(req)
    assert result.model_id == vlm.model_id and result.latency_s > 0
    assert 1 <= result.usage.generated_tokens <= 4
    assert result.usage.visual_tokens == vlm.profile.token_rule.tokens_for(300, 400)  # type: ignore[union-attr]
    assert result.usage.text_tokens > 5
    again = vlm.generate(req)
    assert again.text == result.text  # greedy decoding is deterministic


def _greedy_ids(vlm: TransformersVLM, req: VLMRequest, n: int) -> list[int]:
    """Greedy decoding by transformers itself, outside our backend."""
    enc = vlm.processor(text=[vlm.render(req)], images=[req.images], return_tensors="pt")
    out = vlm.model.generate(
        **enc, max_new_tokens=n, do_sample=False, pad_token_id=vlm.tokenizer.pad_token_id
    )
    return [int(t) for t in out[0, enc["input_ids"].shape[1] :]]


def test_generate_matches_transformers_greedy(vlm: TransformersVLM) -> None:
    req = VLMRequest.from_prompt("What is the color of the circle?", [PICTURE], max_new_tokens=5)
    ids = _greedy_ids(vlm, req, 5)
    assert vlm.generate(req).text == vlm.tokenizer.decode(ids, skip_special_tokens=True).strip()


def _until_eos(vlm: TransformersVLM, ids: list[int]) -> list[int]:
    """The tokens up to and including the first end-of-sequence one."""
    ends = [i for i, t in enumerate(ids) if t in vlm.eos_ids]
    return ids[: ends[0] + 1] if ends else ids


def _forward_logprobs(
    vlm: TransformersVLM, req: VLMRequest, tokens: list[int], temperature: float = 1.0
) -> list[float]:
    """log p(token i | prompt, tokens before i) for each of ``tokens``, from one plain forward pass of the
    prompt followed by the tokens (transformers itself, outside our backend); ``temperature`` scales the
    logits first (what a sampler draws from, not the model's own probability)."""
    enc = vlm.processor(text=[vlm.render(req)], images=[req.images], return_tensors="pt")
    n = enc["input_ids"].shape[1]
    extra = torch.tensor([tokens])
    inputs = dict(enc)
    inputs["input_ids"] = torch.cat([enc["input_ids"], extra], dim=1)
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    if "mm_token_type_ids" in enc:  # Qwen2-VL: generated tokens are text
        inputs["mm_token_type_ids"] = torch.cat([enc["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
    with torch.no_grad():
        logits = vlm.model(**inputs, use_cache=False).logits[0, n - 1 : -1].float() / temperature
    picked = torch.log_softmax(logits, dim=-1).gather(-1, extra[0].unsqueeze(-1))
    return [float(lp) for lp in picked.squeeze(-1)]


def test_generate_token_logprobs_are_the_models_own(vlm: TransformersVLM) -> None:
    """One log-probability per kept token, each what a plain forward pass of the prompt and the tokens
    transformers' greedy decoder chose gives that token; ``confidence`` is exp of their mean."""
    req = VLMRequest.from_prompt("What is the color of the circle?", [PICTURE], max_new_tokens=5)
    kept = _until_eos(vlm, _greedy_ids(vlm, req, 5))
    result = vlm.generate(req)
    assert result.token_logprobs is not None
    assert len(result.token_logprobs) == len(kept) == result.usage.generated_tokens
    assert all(lp <= 0 for lp in result.token_logprobs)
    want = _forward_logprobs(vlm, req, kept)
    assert result.token_logprobs == pytest.approx(want, abs=1e-4)
    assert result.confidence == pytest.approx(math.exp(sum(want) / len(want)), rel=1e-4)


def test_sampled_token_logprobs_are_the_models_not_the_samplers(vlm: TransformersVLM) -> None:
    """Sampling at temperature 1.7: the log-probabilities are of the tokens drawn (the same draw as
    transformers' sampler from the same seed), under the model's raw logits, not the temperature-scaled
    distribution they were drawn from."""
    req = VLMRequest.from_prompt("Describe the image.", [PICTURE], max_new_tokens=5, temperature=1.7, seed=5)
    enc = vlm.processor(text=[vlm.render(req)], images=[req.images], return_tensors="pt")
    torch.manual_seed(5)
    out = vlm.model.generate(
        **enc,
        max_new_tokens=5,
        do_sample=True,
        temperature=1.7,
        top_p=1.0,
        pad_token_id=vlm.tokenizer.pad_token_id,
    )
    drawn = _until_eos(vlm, [int(t) for t in out[0, enc["input_ids"].shape[1] :]])
    result = vlm.generate(req)
    words = [t for t in drawn if t not in vlm.eos_ids]
    assert result.text == vlm.tokenizer.decode(words, skip_special_tokens=True).strip()  # the same draw
    assert result.token_logprobs == pytest.approx(_forward_logprobs(vlm, req, drawn), abs=1e-4)
    assert result.token_logprobs != pytest.approx(_forward_logprobs(vlm, req, drawn, 1.7), abs=1e-4)


def test_a_stop_string_keeps_the_logprobs_of_the_tokens_its_text_needs(vlm: TransformersVLM) -> None:
    """Text cut at a stop string keeps the log-probabilities of the tokens the remaining text is made of."""
    req = VLMRequest.from_prompt("Describe the image.", [PICTURE], max_new_tokens=5)
    full = vlm.generate(req)
    assert full.token_logprobs is not None
    words = [t for t in _until_eos(vlm, _greedy_ids(vlm, req, 5)) if t not in vlm.eos_ids]
    whole = vlm.tokenizer.decode(words, skip_special_tokens=True)
    texts = [vlm.tokenizer.decode(words[:k], skip_special_tokens=True) for k in range(len(words) + 1)]
    # the first split after token k >= 2 that token k's text ends, with the rest occurring only there
    k = next(
        k
        for k in range(2, len(words))
        if len(texts[k - 1]) < len(texts[k]) < len(whole)
        and whole.startswith(texts[k])
        and whole.find(whole[len(texts[k]) :]) == len(texts[k])
    )
    stop = whole[len(texts[k]) :]
    cut = vlm.generate(req.model_copy(update={"options": req.options.model_copy(update={"stop": [stop]})}))
    assert cut.text == texts[k].strip() and cut.finish_reason == "stop"
    assert cut.token_logprobs == full.token_logprobs[:k]
    assert cut.usage == full.usage  # every token was generated and charged, whatever the text keeps


@pytest.fixture(scope="module")
def tiny_vlm() -> TransformersVLM:
    if not tiny_vlm_available():
        pytest.skip("the trained tiny VLM is not in this checkout")
    return TransformersVLM(TINY_VLM_PATH, device="cpu")


def test_tiny_vlm_confidence_is_its_answers_length_normalised_probability(tiny_vlm: TransformersVLM) -> None:
    """The trained tiny VLM answers a scene's question with one word and the end of sequence: the word's
    log-probability is what ``score`` gives the same text, the end's what a plain forward pass gives it,
    and a stop string keeps the log-probabilities of the tokens its text still needs (at least one)."""
    image, item = generate_scene(11, 0)
    req = VLMRequest.from_prompt(item.question, [image], max_new_tokens=8)
    result = tiny_vlm.generate(req)
    kept = _until_eos(tiny_vlm, _greedy_ids(tiny_vlm, req, 8))
    assert result.finish_reason == "stop" and kept[-1] in tiny_vlm.eos_ids
    assert result.token_logprobs is not None and len(result.token_logprobs) == len(kept) == 2, result
    want = _forward_logprobs(tiny_vlm, req, kept)
    assert result.token_logprobs == pytest.approx(want, abs=1e-4)
    scored = tiny_vlm.score(req, [result.text]).logprobs[0]
    assert result.token_logprobs[0] == pytest.approx(scored, abs=1e-4)
    assert result.confidence == pytest.approx(math.exp(sum(want) / 2), rel=1e-4)
    assert 0.5 < result.confidence <= 1.0  # trained: sure of its answer
    for stop in (result.text[2:], result.text[:1]):  # cut inside the word; cut to nothing
        cut = tiny_vlm.generate(
            req.model_copy(update={"options": req.options.model_copy(update={"stop": [stop]})})
        )
        assert cut.text == result.text[: result.text.find(stop)] and cut.finish_reason == "stop"
        assert cut.token_logprobs == result.token_logprobs[:1]


def test_score_agrees_with_greedy_one_token_answer(vlm: TransformersVLM) -> None:
    """The option that greedy decoding emits first must be the top-scored option."""
    for question in ("What is the color of the circle?", "Is there a star?", "Describe it."):
        req = VLMRequest.from_prompt(question, [PICTURE], max_new_tokens=1)
        greedy = _greedy_ids(vlm, req, 1)[0]
        others = [t for t in range(40, 400, 37) if t != greedy]
        words = [vlm.tokenizer.decode([t]).strip() for t in [*others, greedy]]
        options = list(dict.fromkeys(w for w in words if w))
        if not vlm.tokenizer.decode([greedy]).strip():
            continue  # greedy emitted whitespace or a control token: nothing to compare
        scored = vlm.score(req, options)
        assert scored.best == vlm.tokenizer.decode([greedy]).strip(), (
            question,
            scored.options,
            scored.logprobs,
        )


def test_yes_probability_matches_a_plain_forward_pass(vlm: TransformersVLM) -> None:
    req = VLMRequest.from_prompt("Is there a red circle in the image? Answer Yes or No.", [PICTURE])
    got = vlm.yes_probability(req)
    enc = vlm.processor(text=[vlm.render(req)], images=[req.images], return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(vlm.model(**enc).logits[0, -1].float(), dim=-1)

    def mass(word: str) -> float:
        """Every single-token spelling: Yes, " Yes", yes, " yes", YES, " YES" (the documented set)."""
        ids = set()
        for variant in (word, " " + word, word.lower(), " " + word.lower(), word.upper(), " " + word.upper()):
            enc_ids = vlm.tokenizer.encode(variant, add_special_tokens=False)
            if len(enc_ids) == 1 and vlm.tokenizer.decode(enc_ids).strip() == variant.strip():
                ids.add(enc_ids[0])
        return sum(float(probs[i]) for i in ids)

    yes, no = mass("Yes"), mass("No")
    assert got.p_yes == pytest.approx(yes / (yes + no), abs=1e-4)


def test_chunked_batches_equal_unchunked(tiny_model_dirs: dict[str, Path]) -> None:
    small = TransformersVLM(tiny_model_dirs["idefics3"], max_batch_size=2)
    big = TransformersVLM(tiny_model_dirs["idefics3"])
    reqs = [
        VLMRequest.from_prompt(f"Is it {c}?", [img])
        for c in ("red", "blue", "green")
        for img in (PICTURE, SMALL)
    ]
    ledger = TokenLedger(TokenBudget(max_total_tokens=100_000))
    chunked = small.yes_probabilities(reqs, ledger)
    assert [r.p_yes for r in chunked] == pytest.approx(
        [r.p_yes for r in big.yes_probabilities(reqs)], abs=1e-5
    )
    assert ledger.spent.forward_passes == 3 and ledger.spent.total == sum(r.usage.total for r in chunked)
    options = ["red circle", "blue", "a green square", "no idea at all", "left"]
    assert small.score(reqs[0], options).logprobs == pytest.approx(
        big.score(reqs[0], options).logprobs, abs=1e-4
    )
    tight = TokenLedger(TokenBudget(max_total_tokens=ledger.spent.total - 1))
    with pytest.raises(BudgetExceeded):
        small.yes_probabilities(reqs, tight)  # refused as a whole: no chunk runs first
    assert tight.spent.total == 0


def _teacher_forced(vlm: TransformersVLM, req: VLMRequest, continuation: str) -> float:
    """log p(continuation | prompt), straight from transformers, outside our backend."""
    prompt = vlm.render(req)
    full = vlm.processor(text=[prompt + continuation], images=[req.images], return_tensors="pt")
    base = vlm.processor(text=[prompt], images=[req.images], return_tensors="pt")
    n = base["input_ids"].shape[1]
    with torch.no_grad():
        logits = vlm.model(**full).logits[0].float()
    logp = torch.log_softmax(logits[n - 1 : -1], dim=-1)
    return float(logp.gather(-1, full["input_ids"][0, n:].unsqueeze(-1)).sum())


def test_multi_token_scores_match_a_plain_forward_pass(vlm: TransformersVLM) -> None:
    req = VLMRequest.from_prompt("What is in the picture?", [SMALL])
    options = ["red circle", "blue", "a green square on the left"]
    batched = vlm.score(req, options)
    assert batched.usage.forward_passes == 1
    for option, got in zip(options, batched.logprobs, strict=True):
        alone = vlm.score(req, [option]).logprobs[0]
        assert got == pytest.approx(alone, abs=1e-4)
        expected = max(_teacher_forced(vlm, req, option), _teacher_forced(vlm, req, " " + option))
        assert got == pytest.approx(expected, abs=1e-3)
    assert all(lp < 0 for lp in batched.logprobs)
    assert sum(batched.probabilities) == pytest.approx(1.0)


def test_yes_probability_batched_equals_single(vlm: TransformersVLM) -> None:
    reqs = [
        VLMRequest.from_prompt("Is there a red circle in the image? Answer Yes or No.", [PICTURE]),
        VLMRequest.from_prompt("Is it blue?", [SMALL]),
        VLMRequest.from_prompt("Could you answer the question from this view? Answer Yes or No.", [SMALL]),
    ]
    calls = _forward_count(vlm)
    batch = vlm.yes_probabilities(reqs)
    assert calls[0] == 1  # one forward pass for the three probes
    for req, got in zip(reqs, batch, strict=True):
        single = vlm.yes_probability(req)
        assert 0.0 <= got.p_yes <= 1.0
        assert got.p_yes == pytest.approx(single.p_yes, abs=1e-4)
        assert -1.0 <= got.confidence <= 1.0
        p_yes, p_no = np.exp(got.logprob_yes), np.exp(got.logprob_no)
        assert got.p_yes == pytest.approx(p_yes / (p_yes + p_no))


def test_budget_exceeded_before_any_forward_pass(vlm: TransformersVLM) -> None:
    calls = _forward_count(vlm)
    req = VLMRequest.from_prompt("Describe the image.", [PICTURE], max_new_tokens=8)
    tiny = TokenLedger(TokenBudget(max_total_tokens=20))
    with pytest.raises(BudgetExceeded):
        vlm.generate(req, tiny)
    with pytest.raises(BudgetExceeded):
        vlm.score(req, ["Yes", "No"], tiny)
    with pytest.raises(BudgetExceeded):
        vlm.yes_probabilities([req, req], tiny)
    assert calls[0] == 0
    assert tiny.spent.total == 0

    # an exact budget: prompt + max_new_tokens fits, one token less does not
    probe = vlm.generate(req)
    need = probe.usage.prompt_tokens + 8
    vlm.generate(req, TokenLedger(TokenBudget(max_total_tokens=need)))
    with pytest.raises(BudgetExceeded):
        vlm.generate(req, TokenLedger(TokenBudget(max_total_tokens=need - 1)))


def test_ledger_spends_what_calls_report(vlm: TransformersVLM) -> None:
    ledger = TokenLedger(TokenBudget(max_total_tokens=100_000))
    req = VLMRequest.from_prompt("Describe the image.", [PICTURE], max_new_tokens=3)
    a = vlm.generate(req, ledger)
    b = vlm.score(req, ["Yes", "No"], ledger)
    c = vlm.yes_probability(req, ledger)
    assert ledger.spent.total == a.usage.total + b.usage.total + c.usage.total
    assert ledger.remaining == 100_000 - ledger.spent.total


def test_unknown_model_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model folder at"):
        TransformersVLM(tmp_path / "missing-model")
    with pytest.raises(ModelLoadError, match="no config.json"):
        TransformersVLM(tmp_path)
    with pytest.raises(ModelLoadError, match="HF_HUB_OFFLINE"):
        TransformersVLM("foveate-test/definitely-not-a-cached-model")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="broken"):
        TransformersVLM(broken)


def _processor_count(vlm: TransformersVLM, height: int, width: int) -> int:
    image = np.zeros((height, width, 3), dtype=np.uint8)
    req = VLMRequest.from_prompt("Describe the image.", [image])
    enc = vlm.processor(text=[vlm.render(req)], images=[req.images], return_tensors="pt")
    return int((enc["input_ids"] == vlm.image_token_id).sum())


def test_predicted_visual_tokens_equal_processor_count(vlm: TransformersVLM) -> None:
    spec = vlm.profile.token_rule
    assert spec is not None
    rng = np.random.default_rng(99)
    sizes = [(int(h), int(w)) for h, w in rng.integers(20, 1400, size=(20, 2))] + [(37, 1300), (1100, 41)]
    for height, width in sizes:
        assert spec.tokens_for(height, width) == _processor_count(vlm, height, width), (height, width)


def test_images_are_resized_to_the_visual_cap(vlm: TransformersVLM) -> None:
    spec = vlm.profile.token_rule
    assert spec is not None
    full = spec.tokens_for(900, 1300)
    fewest = spec.tokens_for(28, 28)
    cap = max(fewest, full // 3)
    req = VLMRequest.from_prompt("Describe.", [np.zeros((900, 1300, 3), dtype=np.uint8)], max_new_tokens=1)
    budget = TokenBudget(max_visual_tokens_per_image=cap)
    if full <= cap:  # a fixed-size encoder (LLaVA-1.5): the count cannot change, only be checked
        assert vlm.generate(req, TokenLedger(budget)).usage.visual_tokens == full
        with pytest.raises(BudgetExceeded, match="visual"):
            vlm.generate(req, TokenLedger(TokenBudget(max_visual_tokens_per_image=full - 1)))
        return
    fitted = vlm.fit_images(req, cap).images[0]
    assert abs(fitted.width / fitted.height - 1300 / 900) < 0.1
    used = vlm.generate(req, TokenLedger(budget)).usage.visual_tokens
    assert used <= cap and used == _processor_count(vlm, fitted.height, fitted.width)


def test_shared_prefix_probes_equal_independent_probes(vlm: TransformersVLM) -> None:
    """probe_views encodes each view once and shares its prefix; the answers must not change."""
    views = [PICTURE, SMALL, PICTURE[:200, :150]]
    questions = [
        ["Is there a red circle in the image? Answer Yes or No.", "Is it blue?"],
        ["Could you answer the question from this view? Answer Yes or No."],
        ["Is it blue?", "Is there a star? Answer Yes or No.", "Is it big?"],
    ]
    ledger = TokenLedger()
    calls = _forward_count(vlm)
    shared = vlm.probe_views(views, questions, ledger)
    passes = calls[0]
    for view, asked, got in zip(views, questions, shared, strict=True):
        assert len(got) == len(asked)
        for question, answer in zip(asked, got, strict=True):
            alone = vlm.yes_probability(VLMRequest.from_prompt(question, [view]))
            assert answer.p_yes == pytest.approx(alone.p_yes, abs=1e-4)
    assert ledger.spent.forward_passes == sum(a.usage.forward_passes for g in shared for a in g)
    if vlm.profile.prefix_reuse:
        assert passes == 2  # prefixes, then every question at once
        # each view's image tokens are encoded once, not once per question
        single = sum(
            vlm.yes_probability(VLMRequest.from_prompt("Is it?", [v])).usage.visual_tokens for v in views
        )
        assert ledger.spent.visual_tokens == single
    else:
        assert passes == 1


def test_probes_with_one_question_per_view_take_one_pass(vlm: TransformersVLM) -> None:
    """With nothing to share, a prefix pass would be a second forward pass for nothing."""
    views = [PICTURE, SMALL, PICTURE[:200, :150]]
    questions = [["Is there a red circle in the image? Answer Yes or No."], ["Is it blue?"], ["Is it big?"]]
    calls = _forward_count(vlm)
    got = vlm.probe_views(views, questions, TokenLedger())
    assert calls[0] == 1
    for view, (question,), (answer,) in zip(views, questions, got, strict=True):
        alone = vlm.yes_probability(VLMRequest.from_prompt(question, [view]))
        assert answer.p_yes == pytest.approx(alone.p_yes, abs=1e-4)


def test_relevance_maps_cover_the_patch_grid(vlm: TransformersVLM) -> None:
    from foveate.errors import UnsupportedRequestError

    if vlm.model_type == "idefics3":
        with pytest.raises(UnsupportedRequestError):
            vlm.relevance_maps([PICTURE], ["Where is the red circle?"])
        return
    before = vlm.config._attn_implementation
    calls = _forward_count(vlm)
    maps = vlm.relevance_maps([PICTURE, SMALL], ["Where is the red circle?", "Is it blue?"])
    assert calls[0] == 1  # both prompts of both views in one pass
    assert vlm.config._attn_implementation == before  # eager attention only for that pass
    for relevance, view in zip(maps, [PICTURE, SMALL], strict=True):
        rows, cols = relevance.grid.shape
        request = VLMRequest.from_prompt("x", [view])
        enc = vlm.encode([vlm.render(request)], [request.images], "right")
        assert rows * cols == enc.visual[0]
        assert np.isfinite(relevance.grid).all() and (relevance.grid >= 0).all()


def test_unnormalised_relevance_maps_are_the_question_attention_alone(vlm: TransformersVLM) -> None:
    if vlm.model_type == "idefics3":
        return
    rel = vlm.relevance_maps([PICTURE], ["Where is the red circle?"])[0]
    raw = vlm.relevance_maps([PICTURE], ["Where is the red circle?"], normalize=False)[0]
    assert raw.grid.shape == rel.grid.shape
    # attention weights over the image tokens: non-negative, at most 1 in all (the rest went to text)
    assert (raw.grid >= 0).all() and 0 < raw.grid.sum() <= 1 + 1e-5
    # one prompt instead of two: half the visual tokens
    assert raw.usage.visual_tokens * 2 == rel.usage.visual_tokens
    generic = vlm.relevance_maps([PICTURE], [GENERIC_PROMPT], normalize=False)[0]
    np.testing.assert_allclose(rel.grid, raw.grid / np.maximum(generic.grid, 1e-12), rtol=1e-4)
