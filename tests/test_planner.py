"""The budget planner: arithmetic checks, then a zoom search on the tiny VLM that stays inside its cap."""

from __future__ import annotations

import pytest

from foveate.synthetic import generate_scene
from foveate.tiny_vlm.tasks import OPTION_CUE
from foveate.vlm.budget import TokenBudget
from foveate.vlm.transformers_vlm import TransformersVLM
from foveate.zoom import ZoomAgent, ZoomConfig, builtin_strategies, wording_cues
from foveate.zoom.planner import ProbeBound, plan_search, probe_visual_cost
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


def test_repeats_on_a_shared_view_cost_their_prompt_unless_pruning_stops_the_sharing() -> None:
    budget = TokenBudget(max_total_tokens=40_000)
    # 30 views of 576 + 48 and 90 repeats: 18,720 + 4,320 shared fits unpruned; unshared (74,880) does not
    shared = plan_search(
        budget, probes=30, repeats=90, shared=True, view_tokens=576, answer_tokens=1000, prune="fastv"
    )
    assert shared.budget.prune is None and shared.fits and "for 120 probes" in shared.note
    assert shared.estimated_tokens == 30 * (576 + 48) + 90 * 48 + 1000
    alone = plan_search(budget, probes=30, repeats=90, view_tokens=576, answer_tokens=1000, prune="fastv")
    assert alone.budget.prune == "fastv" and alone.budget.keep == 0.25 and alone.fits
    tight = TokenBudget(max_total_tokens=20_000)  # shared no longer fits: pruned, each probe then pays a view
    pruned = plan_search(
        tight, probes=30, repeats=90, shared=True, view_tokens=576, answer_tokens=1000, prune="fastv"
    )
    assert pruned.budget.prune == "fastv" and pruned.budget.keep == 0.1 and pruned.fits


def test_the_plan_counts_what_option_cues_and_narrowing_add(vlm: TransformersVLM) -> None:
    """Option cues ask each cue probe once per option, on the same view; narrowing probes nine windows a
    cue. Counted as views, the repeats made the tiny VLM's plan prune, which turns its prefix sharing off and
    spent more tokens than no plan at all (a review measured 9,087 against 5,539 on this scene)."""
    image, item = generate_scene(7, 0)
    strategies = builtin_strategies()
    fast, direct, attention = (strategies.get(n) for n in ("fast", "direct", "attention_crop"))
    plain = ZoomAgent(vlm, ZoomConfig(strategy="fast"))
    prompts = plain.prompts.model_copy(update={"option_cue": OPTION_CUE, "narrow_cues": True})
    named = ZoomAgent(vlm, ZoomConfig(strategy="fast", prompts=prompts))
    bare = plain.worst_case_probes(image, fast, item.options).total
    assert plain.worst_case_probes(image, fast, item.options).repeats == 0 and len(item.options) == 4
    bound = named.worst_case_probes(image, fast, item.options)
    assert (bound.views, bound.repeats) == (bare + NARROW_WINDOWS, 3 * (bare + NARROW_WINDOWS))
    assert named.worst_case_probes(image, fast).repeats == 0  # free text: no option to name
    assert named.worst_case_probes(image, fast, item.options, ["red star", "blue circle"]).repeats == 0
    assert named.worst_case_probes(image, direct, item.options).total == 0  # no search, nothing to narrow
    assert named.worst_case_probes(image, attention, item.options) == ProbeBound(2)  # relevance maps only
    cues = wording_cues(item.question)
    assert len(cues) == 1  # an attribute question: option cues apply
    runs = {}
    for planned in (True, False):
        config = ZoomConfig(
            strategy="fast", prompts=prompts, budget=TokenBudget(max_total_tokens=30_000), plan_budget=planned
        )
        runs[planned] = ZoomAgent(vlm, config).run(image, item.question, item.options, cues=cues)
    assert not any("stopped early" in n for r in runs.values() for n in r.notes)
    (note,) = [n for n in runs[True].notes if n.startswith("budget plan:")]
    assert f"for {bound.total} probes" in note
    assert runs[True].usage.total <= runs[False].usage.total  # a plan that fits never costs more


def test_when_nothing_fits_the_plan_is_the_cheapest_setting_not_the_most_pruned() -> None:
    """A shallow language model (the tiny VLM's) saves little by FastV: pruned, each of 120 probes pays a
    view, more than 30 shared views and 90 prompts; a fixed-count processor cannot save by resolution."""
    tiny = TokenBudget(max_total_tokens=5_000)
    shape = {"view_tokens": 576, "answer_tokens": 1000, "prune": "fastv", "depth": 4, "min_view_tokens": 576}
    plan = plan_search(tiny, probes=30, repeats=90, shared=True, **shape)  # type: ignore[arg-type]
    assert not plan.fits and plan.budget.prune is None
    assert plan.estimated_tokens == 30 * (576 + 48) + 90 * 48 + 1000
    unshared = plan_search(tiny, probes=30, repeats=90, **shape)  # type: ignore[arg-type]
    assert not unshared.fits and unshared.budget.prune == "fastv" and unshared.budget.keep == 0.1
