"""Zoom agent: find the small things a question is about, then answer from a crop that shows them.

A VLM sees a 2000 px image through a window of a few hundred pixels, so a 30 px object becomes a couple of
pixels. The agent plans the search under the question's budget (``planner``), lists the question's cues,
lets its strategy (``strategies``: ``direct``, ``zoomeye``, ``fast``, ``attention_crop``, or yours) find the
crops that show them, and answers from their union (``answering``).

Budgets: at most ``max_probes`` prompt-and-view probes, ``max_forward_passes`` batched forward passes, and
the ``TokenBudget`` of the question. The search stops before a call that could overrun any of them, keeping
what the final answer needs, and answers from the best node found so far (``budget_exhausted`` says so).
What the agent knows of the model (its input side, token rule, batch size, prompts) comes from
``vlm.profile``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

from PIL import Image

from foveate.imaging.boxes import Box
from foveate.imaging.grounding import grounding
from foveate.imaging.images import load_image
from foveate.vlm.base import VLM
from foveate.vlm.budget import TokenBudget, TokenLedger
from foveate.vlm.types import VLMRequest
from foveate.zoom.answering import Reply, answer_from, answer_reserve
from foveate.zoom.config import Visit, ZoomConfig, ZoomResult
from foveate.zoom.context import SearchContext
from foveate.zoom.cues import parse_cues, wording_cues
from foveate.zoom.experience import SearchPrior
from foveate.zoom.meter import Meter, SearchStopped
from foveate.zoom.planner import TEXT_TOKENS_PER_PROBE, ProbeBound, plan_search, probe_visual_cost
from foveate.zoom.search import NARROW_WINDOWS, TreeSearch, ZoomStrategy
from foveate.zoom.strategies import StrategyRegistry, builtin_strategies
from foveate.zoom.tree import tree_depth

logger = logging.getLogger(__name__)

__all__ = ["ZoomAgent"]


class ZoomAgent:
    """Answers a question about a large image by searching its image tree for the crops that matter.

    ``strategies``: the registry ``config.strategy`` is looked up in (the built-in ones by default; a copy
    with yours registered for your own strategies).
    """

    def __init__(
        self, vlm: VLM, config: ZoomConfig | None = None, *, strategies: StrategyRegistry | None = None
    ) -> None:
        self.vlm = vlm
        self.config = config or ZoomConfig()
        self.strategies = strategies if strategies is not None else builtin_strategies()
        self.strategy: ZoomStrategy = self.strategies.get(self.config.strategy)
        self.prompts = self.config.prompts or vlm.profile.zoom
        self.native_side = self.config.native_side or vlm.profile.native_side

    # ------------------------------------------------------------------ public API
    def run(
        self,
        image: object,
        question: str,
        options: Sequence[str] | None = None,
        *,
        cues: Sequence[str] | None = None,
        strategy: str | None = None,
        context: str | None = None,
        answer: bool = True,
        truth: Sequence[Box] | None = None,
        watch: Callable[[int, int, Sequence[Visit]], None] | None = None,
        prior: SearchPrior | Callable[[list[str]], SearchPrior | None] | None = None,
    ) -> ZoomResult:
        """Search (unless ``direct``) and answer. ``options``: score them; else generate free text.

        ``cues``: the objects to look for; ``None`` asks the model to list them (one generation), or, for a
        model that cannot write (the embedded tiny VLM), reads them off the question's wording
        (``wording_cues``; none: the question is searched for as a whole), as the perceive node does.
        ``strategy``: another registered strategy than the config's, for this question.
        ``context``: text for the answering call only (a system message), e.g. recalled insights; the
        search's probes never see it, so that their confidences stay comparable across runs.
        ``answer=False``: search only (a workflow's reasoning node answers); ``answer`` comes back empty.
        ``truth``: the ground-truth boxes of the objects the question is about, where known (a benchmark);
        the result's ``grounding`` then says whether the crop answered from held them. The search never
        sees them.
        ``watch``: told (probes so far, tokens spent so far, views recorded since) after each probing call
        and each view recorded, for a live display.
        ``prior``: what experience of this kind of question says (``foveate.zoom.experience``), or a function
        of the cues that says it once they are known (``foveate.insights.search_prior`` reads a memory).
        """
        cfg = self.config
        chosen = self.strategies.get(strategy) if strategy is not None else self.strategy
        img = load_image(image)  # type: ignore[arg-type]
        start = time.perf_counter()
        notes: list[str] = []
        reserve = answer_reserve(self.vlm, self.prompts, img)
        search_budget = self._plan(img, chosen, reserve, notes, options, cues)
        ledger = TokenLedger(search_budget)
        meter = Meter(cfg.max_probes, cfg.max_forward_passes, ledger, watch=watch)
        meter.reserve = reserve
        meter.per_probe = self._probe_estimate(search_budget)
        ctx = SearchContext(self.vlm, cfg, self.prompts, self.native_side, img, meter)
        exhausted = False
        cue_list = list(cues) if cues is not None else []
        try:
            if chosen.lists_cues and cues is None:
                cue_list = self.question_cues(img, question, ledger, meter)
            ctx.prior = prior(cue_list) if callable(prior) else prior
            if ctx.prior is not None and ctx.prior.changes:
                notes.append(f"search prior from {ctx.prior.runs} runs: " + "; ".join(ctx.prior.reasons))
            ctx.variants = self.prompts.cue_variants(cue_list, options)
            chosen.search(ctx, self.prompts.search_question(question, options), cue_list)
        except SearchStopped as stop:
            exhausted = True
            notes.append(f"search stopped early: {stop}; answering from the best node so far")
            best = ctx.best_visit()
            if best is not None and not ctx.found:
                ctx.found.append(best)
        if ctx.fallbacks:
            notes.append(f"the prior found nothing for {ctx.fallbacks} cue(s); searched them without it")
        crops = [f.box for f in ctx.found if f.box != ctx.full]
        answer_box = ctx.answer_box(crops) if crops else None
        reply = (
            self.answer_from(img, question, options, answer_box, ledger, context=context)
            if answer
            else Reply("")
        )
        return ZoomResult(
            question=question,
            answer=reply.text,
            options=list(options or []),
            probabilities=reply.probabilities,
            confidence=reply.confidence,
            strategy=chosen.name,
            cues=cue_list,
            crops=crops,
            answer_box=answer_box,
            grounding=grounding(answer_box, truth) if truth is not None else None,
            visits=meter.visits,
            probes=meter.probes,
            forward_passes=meter.passes + int(answer),
            usage=ledger.spent,
            overruns=[str(o) for o in ledger.overruns],
            wall_s=time.perf_counter() - start,
            budget_exhausted=exhausted,
            notes=notes,
            prior=ctx.prior,
            prior_fallbacks=ctx.fallbacks,
        )

    def question_cues(
        self, image: Image.Image, question: str, ledger: TokenLedger, meter: Meter | None = None
    ) -> list[str]:
        """The objects ``question`` needs: the model's own list when it writes, else its wording's."""
        # A model that cannot write answers a cue-listing prompt with one of its trained words: the shipped
        # tiny VLM said "yellow" for "What is the color of the square?" (seed 7, scene 0), and the `zoom`
        # workflow, which has no perceive node, searched for that (issue 28 notes).
        if self.vlm.profile.writes:
            return self.list_cues(image, question, ledger, meter)
        return wording_cues(question)

    def list_cues(
        self, image: Image.Image, question: str, ledger: TokenLedger, meter: Meter | None = None
    ) -> list[str]:
        """One generation lists the objects the question needs (ZoomEye's visual cues)."""
        if meter is not None:
            meter.check(0, 1)
        request = VLMRequest.from_prompt(self.prompts.cue_listing.format(q=question), images=[image])
        result = self.vlm.generate(request, ledger)
        if meter is not None:
            meter.passes += result.usage.forward_passes or 1
        return parse_cues(result.text)

    def answer_from(
        self,
        image: Image.Image,
        question: str,
        options: Sequence[str] | None,
        box: tuple[int, int, int, int] | None,
        ledger: TokenLedger | None = None,
        *,
        context: str | None = None,
    ) -> Reply:
        """The answering call alone (``foveate.zoom.answering.answer_from`` with this agent's prompts)."""
        return answer_from(self.vlm, self.prompts, image, question, options, box, ledger, context=context)

    def retry_cost(self, image: Image.Image) -> int:
        """Tokens a second look needs at least: one round of child probes plus the answer's reserve."""
        return answer_reserve(self.vlm, self.prompts, image) + 5 * self._probe_estimate(None)

    # ------------------------------------------------------------------ budget planning
    def _view_tokens(self, budget: TokenBudget | None) -> int:
        """Visual tokens of one probe view at the model's input size, under ``budget``'s per-image cap."""
        cap = budget.max_visual_tokens_per_image if budget is not None else None
        return self.vlm.profile.view_tokens(self.native_side, cap)

    def _probe_estimate(self, budget: TokenBudget | None) -> int:
        """Tokens one probe is expected to cost under ``budget`` (pruning and visual cap included)."""
        tokens = self._view_tokens(budget)
        depth = self.vlm.profile.lm_depth
        if budget is None or depth is None:  # without a known depth, no pruning saving is counted
            return tokens + TEXT_TOKENS_PER_PROBE
        visual = probe_visual_cost(tokens, budget.prune, budget.keep, depth, budget.layer)
        return math.ceil(visual) + TEXT_TOKENS_PER_PROBE

    def worst_case_probes(
        self,
        image: Image.Image,
        strategy: ZoomStrategy,
        options: Sequence[str] | None = None,
        cues: Sequence[str] | None = None,
    ) -> ProbeBound:
        """The strategy's bound for one cue's search of ``image`` (under its own assumptions: see its
        ``worst_case_probes``), with what the prompts add to a tree search: ``narrow_cues`` probes
        ``NARROW_WINDOWS`` windows of the cue's crop; ``option_cue``, for a question with options and one
        cue (or cues not yet known), asks each of those probes once per option, the repeats on the same view
        (counted for the stop probes too, which are asked once: an upper bound)."""
        depth = tree_depth(image.width, image.height, self.native_side, self.config.max_depth)
        views = strategy.worst_case_probes(depth)
        if not views or not isinstance(strategy, TreeSearch):
            return ProbeBound(views)
        if self.prompts.narrow_cues:
            views += NARROW_WINDOWS
        one_cue = cues is None or len(cues) == 1
        asked = len(options) if self.prompts.option_cue is not None and options and one_cue else 1
        return ProbeBound(views, views * (asked - 1))

    def _plan(
        self,
        image: Image.Image,
        strategy: ZoomStrategy,
        reserve: int,
        notes: list[str],
        options: Sequence[str] | None = None,
        cues: Sequence[str] | None = None,
    ) -> TokenBudget | None:
        """The budget the search runs under: the caller's, or a planned one that fits (see ``planner``)."""
        cfg = self.config
        if not cfg.plan_budget or cfg.budget is None or cfg.budget.max_total_tokens is None:
            return cfg.budget
        profile = self.vlm.profile
        bound = self.worst_case_probes(image, strategy, options, cues)
        probes, repeats = bound.views, bound.repeats
        if cfg.max_probes is not None:  # the meter counts every probe asked, repeats too
            probes = min(probes, cfg.max_probes)
            repeats = min(repeats, cfg.max_probes - probes)
        # pruning is planned only where the model runs it and its depth is known (FastV's saving needs it)
        prune = profile.prune_methods[0] if profile.prune_methods and profile.lm_depth is not None else None
        plan = plan_search(
            cfg.budget,
            probes=probes,
            view_tokens=self._view_tokens(cfg.budget),
            answer_tokens=reserve,
            prune=prune,  # type: ignore[arg-type]
            depth=profile.lm_depth or 1,
            min_view_tokens=profile.fewest_view_tokens(),
            repeats=repeats,
            shared=profile.prefix_reuse and cfg.reuse_prefix and cfg.batch_probes,
        )
        if plan.budget is not cfg.budget:
            notes.append(plan.note)
        return plan.budget
