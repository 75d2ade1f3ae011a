"""The budget planner: arithmetic checks, then a zoom search on the tiny VLM that stays inside its cap."""

from __future__ import annotations

import pytest

from foveate.synthetic import generate_scene
from foveate.tiny_vlm.tasks import OPTION_CUE
from foveate.vlm.budget import TokenBudget
from foveate.vlm.transformers_vlm import TransformersVLM
from foveate.zoom import ZoomAgent, ZoomConfig, builtin_strategies, wording_cues
from foveate.zoom.planner import plan_search, probe_visual_cost
from foveate.zoom.search import NARROW_WINDOWS


def test_each_strategy_owns_its_worst_case_probes() -> None:
    strategies = builtin_strategies()
    assert strategies.get("zoomeye").worst_case_probes(3) == 9 * 9  # 9 pops, 1 + 4 * 2 probes each
    # root and its 4 children, a first level of at most 64 nodes, then 9 pops of 1 + 4 + 1 + 4 probes
    assert strategies.get("fast").worst_case_probes(3) == 1 + 4 + 64 + 9 * 10
    assert strategies.get("direct").worst_case_probes(5) == 0
    assert strategies.get("attention_crop").worst_case_probes(5) == 2


def test_probe_cost_of_each_method() -> None:
    assert probe_visual_cost(576, None, 0.25, 32, 2) == 576
    assert probe_visual_cost(576, "cls", 0.25, 32, 2) == 144
    assert probe_visual_cost(576, "fastv", 0.25, 32, 2) == pytest.approx((2 * 576 + 30 * 144) / 32)


def test_the_plan_prunes_least_that_fits() -> None:
    budget = TokenBudget(max_total_tokens=40_000)
    # 100 probes of 576 visual + 48 text tokens = 62,400 > 40,000: keep 0.5 with FastV is enough
    plan = plan_search(budget, probes=100, view_tokens=576, answer_tokens=1000, prune="fastv")
    assert plan.fits and plan.budget.prune == "fastv" and plan.budget.keep == 0.5
    assert plan.estimated_tokens <= 40_000 and "fastv pruning at keep 0.5" in plan.note
    roomy = plan_search(
        TokenBudget(max_total_tokens=10**6), probes=100, view_tokens=576, answer_tokens=1000, prune="fastv"
    )
    assert roomy.budget.prune is None and roomy.fits
    # no pruning available: lower resolution instead, where the processor's count can shrink
    scaled = plan_search(
        budget, probes=100, view_tokens=576, answer_tokens=1000, prune=None, min_view_tokens=4
    )
    assert scaled.budget.prune is None and scaled.budget.max_visual_tokens_per_image == 288 and scaled.fits
    # a fixed-count processor (LLaVA) cannot save by resolution: the plan says it may run out
    stuck = plan_search(
        budget, probes=100, view_tokens=576, answer_tokens=1000, prune=None, min_view_tokens=576
    )
    assert (
        not stuck.fits
        and stuck.budget.max_visual_tokens_per_image is None
        and "may still run out" in stuck.note
    )
    assert (
        plan_search(TokenBudget(), probes=100, view_tokens=576, answer_tokens=0, prune="fastv").budget
        == TokenBudget()
    )


def test_a_visual_cap_that_already_fits_needs_no_pruning() -> None:
    capped = TokenBudget(max_total_tokens=20_000, max_visual_tokens_per_image=64)
    plan = plan_search(capped, probes=108, view_tokens=64, answer_tokens=600, prune="fastv")
    assert plan.budget.prune is None and plan.fits


def test_the_tiny_vlm_supports_fastv_and_a_planned_search_stays_within_its_cap(vlm: TransformersVLM) -> None:
    assert vlm.profile.prune_methods[:1] == ("fastv",)  # FastV preferred, and the tiny VLM runs it
    image, item = generate_scene(7, 0)
    cap = 2500
    agent = ZoomAgent(vlm, ZoomConfig(strategy="zoomeye", budget=TokenBudget(max_total_tokens=cap)))
    result = agent.run(image, item.question, item.options, cues=wording_cues(item.question))
    assert result.usage.total <= cap and result.answer in item.options
    assert any(n.startswith("budget plan:") for n in result.notes)
    unplanned = ZoomAgent(
        vlm, ZoomConfig(strategy="zoomeye", budget=TokenBudget(max_total_tokens=cap), plan_budget=False)
    ).run(image, item.question, item.options, cues=wording_cues(item.question))
    assert unplanned.usage.total <= cap and not any(n.startswith("budget plan:") for n in unplanned.notes)


def test_the_plan_counts_what_option_cues_and_narrowing_add(vlm: TransformersVLM) -> None:
    """Option cues ask each cue probe once per option and narrowing probes nine windows a cue: a plan that
    ignored them would expect a quarter of the probes and prune too little to finish inside the cap."""
    image, item = generate_scene(7, 0)
    strategies = builtin_strategies()
    fast, direct = strategies.get("fast"), strategies.get("direct")
    plain = ZoomAgent(vlm, ZoomConfig(strategy="fast"))
    prompts = plain.prompts.model_copy(update={"option_cue": OPTION_CUE, "narrow_cues": True})
    named = ZoomAgent(vlm, ZoomConfig(strategy="fast", prompts=prompts))
    bare = plain.worst_case_probes(image, fast, item.options)
    assert bare == plain.worst_case_probes(image, fast) > 0 and len(item.options) == 4
    assert named.worst_case_probes(image, fast, item.options) == 4 * bare + NARROW_WINDOWS
    assert named.worst_case_probes(image, fast) == bare + NARROW_WINDOWS  # free text: no option to name
    assert named.worst_case_probes(image, direct, item.options) == 0  # no search, nothing to narrow
    capped = ZoomConfig(strategy="fast", prompts=prompts, budget=TokenBudget(max_total_tokens=30_000))
    result = ZoomAgent(vlm, capped).run(image, item.question, item.options, cues=wording_cues(item.question))
    (note,) = [n for n in result.notes if n.startswith("budget plan:")]
    assert f"for {4 * bare + NARROW_WINDOWS} probes" in note
