"""Zoom agent: find the small things a question is about, then answer from a crop that shows them.

A VLM sees a 2000 px image through a window of a few hundred pixels, so a 30 px object becomes a couple of
pixels. The agent walks ZoomEye's image tree (``foveate.tools.tree``) guided by the model's own Yes/No
confidences (``c = 2 * P(Yes) - 1`` from real logits) and answers from the crop where the model says it
can answer. Four strategies, all under one budget:

- ``direct``: no search; answer from the whole image (the baseline zoom must beat).
- ``zoomeye``: the faithful baseline. On every pop the popped node gets an answering probe; each child
  gets an existence and a latent probe; priority ``w * existence + (1 - w) * latent`` with
  ``w = b + (1 - b) * (depth / max_depth) ** 2``; global best-first; threshold relaxation after
  ``3 * max_depth`` pops.
- ``fast``: the same tree, cheaper. Stop at the root when it already answers; probe a node's children all
  at once (batched, each child's image and template prefix encoded once and shared by its probes); rank
  the children by one relevance map (ViCrop's rel-att, or plain attention per preset) and probe only the
  best ``top_children`` (falling back to latent probes on the rest when none of those holds the cue); a
  child is checked with the stop probe when it is probed, so popping it costs nothing; ``max_pops``
  optionally ends a search that has lost its way sooner than ZoomEye's relaxation rule. With several
  cues, each cue's crop is tightened around the cue's attention before the union is taken
  (``tighten_crops``), so the answer view keeps small objects large enough to read.
- ``attention_crop``: ViCrop: one relevance map of the whole image, the best window over it, answer.

Budgets: at most ``max_probes`` prompt-and-view probes, ``max_forward_passes`` batched forward passes, and
the ``TokenBudget`` of the question. The search stops before a call that could overrun any of them, keeping
what the final answer needs, and answers from the best node found so far (``budget_exhausted`` says so).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from foveate.agents.planner import (
    TEXT_TOKENS_PER_PROBE,
    plan_search,
    probe_visual_cost,
    prune_support,
    worst_case_probes,
)
from foveate.agents.zoom_prompts import ZoomPrompts, preset_for
from foveate.errors import BudgetExceeded, UnsupportedRequestError
from foveate.tools.images import load_image
from foveate.tools.tree import Box, TreeNode, best_window, box_union, expand_box, map_mass, tree_depth
from foveate.vlm.base import VLM, group_by_view, probe_views_batched
from foveate.vlm.budget import TokenBudget, TokenLedger
from foveate.vlm.types import RelevanceMap, TokenUsage, VLMRequest, YesNoResult

logger = logging.getLogger(__name__)

__all__ = ["Strategy", "Visit", "ZoomAgent", "ZoomConfig", "ZoomResult", "depth_weight", "priority"]

Strategy = Literal["direct", "zoomeye", "fast", "attention_crop"]


def depth_weight(depth: int, max_depth: int, bias: float) -> float:
    """ZoomEye's ``w``: trust the existence probe more the deeper the node (small views show the object)."""
    if max_depth <= 0:
        return 1.0
    return bias + (1 - bias) * (depth / max_depth) ** 2


def priority(existence: float, latent: float, depth: int, max_depth: int, bias: float) -> float:
    w = depth_weight(depth, max_depth, bias)
    return w * existence + (1 - w) * latent


class ZoomConfig(BaseModel):
    """How the agent searches; the ``fast`` switches exist so each part can be ablated."""

    model_config = ConfigDict(frozen=True)
    strategy: Strategy = "fast"
    max_depth: int = Field(default=5, ge=0, le=12)
    native_side: int | None = Field(default=None, ge=8)  # the model's input side; None: ask the model
    prompts: ZoomPrompts | None = None  # None: the preset of the model's family
    max_probes: int | None = Field(default=None, ge=0)
    max_forward_passes: int | None = Field(default=None, ge=1)
    budget: TokenBudget | None = None
    early_stop: bool = True
    batch_probes: bool = True
    reuse_prefix: bool = True
    relevance: bool | None = None  # rank children by attention; None: the model preset decides
    top_children: int = Field(default=2, ge=1, le=4)
    # when the best map-chosen child's latent confidence is below this, the other children get latent
    # probes too (the map pointed the wrong way); None: never
    map_fallback: float | None = Field(default=0.0, ge=-1.0, le=1.0)
    # fast only: pops per cue before it answers from the best node so far; None: the preset's
    # (``ZoomPrompts.max_pops``), else ZoomEye's rule (3 * depth, then threshold relaxations). A search that
    # has not found the cue by then is usually lost in the wrong subtree, and the extra probes rarely buy
    # the answer back (docs/benchmarks/zoom.md).
    max_pops: int | None = Field(default=None, ge=1)
    # with budget.max_total_tokens: choose pruning / view resolution so the worst-case search fits
    plan_budget: bool = True
    window_scale: float = Field(default=2.0, ge=1.0, le=8.0)  # attention_crop window, in native sides
    # fast only, questions with several cues: shrink each cue's crop to the window of this fraction of its
    # side holding most of the cue's attention (one map each), so that the union the answer is given from
    # still shows small objects; None: answer from the union of the search nodes, as ZoomEye does
    tighten_crops: float | None = Field(default=0.5, gt=0.0, le=1.0)
    # fast only: a later cue's search starts this many levels above the node where the previous cue was
    # found (objects a question relates usually sit together), and from the root only if it finds nothing
    # there; None: from the root, after one probe asking whether the previous crop already shows the cue
    local_levels: int | None = Field(default=1, ge=1)


class Visit(BaseModel):
    """One node the search looked at: in visiting order, with the confidences it was ranked by."""

    order: int
    cue: str
    box: Box
    depth: int
    confidence: float | None = None  # the stop probe (answering), when asked
    existence: float | None = None
    latent: float | None = None
    priority: float | None = None
    relevance: float | None = None


class ZoomResult(BaseModel):
    """The answer and how it was reached."""

    question: str
    answer: str
    options: list[str] = Field(default_factory=list)
    probabilities: list[float] = Field(default_factory=list)
    strategy: Strategy
    cues: list[str] = Field(default_factory=list)
    crops: list[Box] = Field(default_factory=list)  # where each cue's search ended (empty: whole image)
    answer_box: Box | None = None  # the crop the answer was given from
    visits: list[Visit] = Field(default_factory=list)
    probes: int = 0
    forward_passes: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    wall_s: float = 0.0
    budget_exhausted: bool = False
    notes: list[str] = Field(default_factory=list)


class _OutOfBudget(Exception):
    """Raised inside the search when the next call would overrun a cap."""


@dataclass
class _Meter:
    """Counts probes and forward passes against the caps; keeps room for the final answer."""

    max_probes: int | None
    max_passes: int | None
    ledger: TokenLedger
    probes: int = 0
    passes: int = 0
    reserve: int = 0  # tokens kept for the final answer
    per_probe: int = 0  # upper estimate of one probe's tokens (raised to the most a probe really cost)
    visits: list[Visit] = field(default_factory=list)

    def check(self, probes: int, passes: int) -> None:
        if self.max_probes is not None and self.probes + probes > self.max_probes:
            raise _OutOfBudget(f"probe cap {self.max_probes} reached")
        if self.max_passes is not None and self.passes + passes > self.max_passes - 1:  # 1 kept to answer
            raise _OutOfBudget(f"forward-pass cap {self.max_passes} reached")
        remaining = self.ledger.remaining
        if remaining is not None and remaining - self.reserve < max(1, probes * self.per_probe):
            raise _OutOfBudget(f"token budget {self.ledger.limit} reached (the rest is kept for the answer)")

    def record(self, results: Sequence[YesNoResult], probes: int) -> None:
        self.probes += probes
        self.passes += sum(r.usage.forward_passes for r in results)
        for r in results:
            self.per_probe = max(self.per_probe, r.usage.visual_tokens + r.usage.text_tokens)


@dataclass
class _Found:
    box: Box
    confidence: float
    cue: str = ""
    depth: int = 0


class ZoomAgent:
    """Answers a question about a large image by searching its image tree for the crops that matter."""

    def __init__(self, vlm: VLM, config: ZoomConfig | None = None) -> None:
        self.vlm = vlm
        self.config = config or ZoomConfig()
        family = str(getattr(vlm, "family", ""))
        self.prompts = self.config.prompts or preset_for(family, vlm.model_id)
        self.native_side = self.config.native_side or _native_side(vlm)

    # ------------------------------------------------------------------ public API
    def run(
        self,
        image: object,
        question: str,
        options: Sequence[str] | None = None,
        *,
        cues: Sequence[str] | None = None,
        strategy: Strategy | None = None,
        context: str | None = None,
        answer: bool = True,
    ) -> ZoomResult:
        """Search (unless ``direct``) and answer. ``options``: score them; else generate free text.

        ``cues``: the objects to look for; ``None`` asks the model to list them (one generation).
        ``context``: text for the answering call only (a system message), e.g. recalled insights; the
        search's probes never see it, so that their confidences stay comparable across runs.
        ``answer=False``: search only (a workflow's reasoning node answers); ``answer`` comes back empty.
        """
        cfg = self.config
        strategy = strategy or cfg.strategy
        img = load_image(image)  # type: ignore[arg-type]
        start = time.perf_counter()
        notes: list[str] = []
        reserve = self._answer_reserve(img)
        search_budget = self._plan(img, strategy, reserve, notes)
        ledger = TokenLedger(search_budget)
        meter = _Meter(cfg.max_probes, cfg.max_forward_passes, ledger)
        meter.reserve = reserve
        meter.per_probe = self._probe_estimate(search_budget)
        full: Box = (0, 0, img.width, img.height)
        exhausted = False
        found: list[_Found] = []
        cue_list = list(cues) if cues is not None else []
        try:
            if strategy != "direct" and cues is None:
                cue_list = self.list_cues(img, question, ledger, meter)
            if strategy in ("zoomeye", "fast"):
                single = len(cue_list) <= 1
                for cue in cue_list or [question]:
                    stop_prompt = (
                        self.prompts.answering.format(q=question)
                        if single
                        else self.prompts.cue_answering.format(o=cue)
                    )
                    if strategy == "fast" and found and cfg.local_levels is None:
                        reused = self._already_shown(img, found, cue, stop_prompt, meter)
                        if reused is not None:
                            reused.cue = cue
                            found.append(reused)
                            continue
                    by_stop = not single and self.prompts.rank_cues_by_stop
                    outcome = None
                    anchor = self._anchor(img, found[-1]) if strategy == "fast" and found else None
                    if anchor is not None:
                        outcome = self._search(img, cue, stop_prompt, strategy, meter, anchor, by_stop)
                    if outcome is None:
                        outcome = self._search(img, cue, stop_prompt, strategy, meter, None, by_stop)
                    if outcome is not None:
                        outcome.cue = cue
                        found.append(outcome)
                if strategy == "fast" and cfg.tighten_crops is not None and len(found) > 1:
                    found = [self._tighten(img, f, cfg.tighten_crops, meter) for f in found]
            elif strategy == "attention_crop":
                found.append(self._attention_crop(img, question, meter))
        except _OutOfBudget as stop:
            exhausted = True
            notes.append(f"search stopped early: {stop}; answering from the best node so far")
            best = self._best_visit(meter.visits)
            if best is not None and not found:
                found.append(best)
        crops = [f.box for f in found if f.box != full]
        answer_box = self._answer_box(crops, img) if crops else None
        reply, probabilities = (
            self.answer_from(img, question, options, answer_box, ledger, context=context)
            if answer
            else ("", [])
        )
        return ZoomResult(
            question=question,
            answer=reply,
            options=list(options or []),
            probabilities=probabilities,
            strategy=strategy,
            cues=cue_list,
            crops=crops,
            answer_box=answer_box,
            visits=meter.visits,
            probes=meter.probes,
            forward_passes=meter.passes + int(answer),
            usage=ledger.spent,
            wall_s=time.perf_counter() - start,
            budget_exhausted=exhausted,
            notes=notes,
        )

    def _view_tokens(self, budget: TokenBudget | None) -> int:
        """Visual tokens of one probe view at the model's input size, under ``budget``'s per-image cap."""
        spec = getattr(self.vlm, "token_spec", None)
        tokens = int(spec.tokens_for(self.native_side, self.native_side)) if spec is not None else 576
        cap = budget.max_visual_tokens_per_image if budget is not None else None
        return tokens if cap is None else min(tokens, cap)

    def _lm_depth(self) -> int:
        """The language model's layers (FastV's saving depends on them); 32 when the backend cannot say."""
        return int(getattr(getattr(self.vlm, "pruner", None), "depth", 32))

    def _fewest_view_tokens(self) -> int:
        spec = getattr(self.vlm, "token_spec", None)
        return int(spec.tokens_for(32, 32)) if spec is not None else 1

    def _probe_estimate(self, budget: TokenBudget | None) -> int:
        """Tokens one probe is expected to cost under ``budget`` (pruning and visual cap included)."""
        tokens = self._view_tokens(budget)
        if budget is None:
            return tokens + TEXT_TOKENS_PER_PROBE
        visual = probe_visual_cost(tokens, budget.prune, budget.keep, self._lm_depth(), budget.layer)
        return math.ceil(visual) + TEXT_TOKENS_PER_PROBE

    def _plan(
        self, image: Image.Image, strategy: Strategy, reserve: int, notes: list[str]
    ) -> TokenBudget | None:
        """The budget the search runs under: the caller's, or a planned one that fits (see ``planner``)."""
        cfg = self.config
        if not cfg.plan_budget or cfg.budget is None or cfg.budget.max_total_tokens is None:
            return cfg.budget
        depth = tree_depth(image.width, image.height, self.native_side, cfg.max_depth)
        plan = plan_search(
            cfg.budget,
            probes=worst_case_probes(strategy, depth, cfg.max_probes),
            view_tokens=self._view_tokens(cfg.budget),
            answer_tokens=reserve,
            prune=prune_support(self.vlm),
            depth=self._lm_depth(),
            min_view_tokens=self._fewest_view_tokens(),
        )
        if plan.budget is not cfg.budget:
            notes.append(plan.note)
        return plan.budget

    def list_cues(
        self, image: Image.Image, question: str, ledger: TokenLedger, meter: _Meter | None = None
    ) -> list[str]:
        """One generation lists the objects the question needs (ZoomEye's visual cues)."""
        if meter is not None:
            meter.check(0, 1)
        request = VLMRequest.from_prompt(self.prompts.cue_listing.format(q=question), images=[image])
        result = self.vlm.generate(request, ledger)
        if meter is not None:
            meter.passes += result.usage.forward_passes or 1
        return parse_cues(result.text)

    # ------------------------------------------------------------------ search
    def _probe(
        self, image: Image.Image, boxes: Sequence[Box], questions: Sequence[Sequence[str]], meter: _Meter
    ) -> list[list[float]]:
        """Confidences ``2 * P(Yes) - 1`` of ``questions[i]`` about the crop ``boxes[i]``."""
        cfg = self.config
        n = sum(len(q) for q in questions)
        batch = int(getattr(self.vlm, "max_batch_size", 16))
        # an upper bound, so a cap is never overrun: 2 passes per batch with a shared prefix (only when a
        # view has several questions to share it)
        sharing = cfg.reuse_prefix and any(len(q) > 1 for q in questions)
        passes = math.ceil(n / batch) * (2 if sharing else 1) if cfg.batch_probes else n * 2
        meter.check(n, passes)
        views = [self._view(image, b) for b in boxes]
        out: list[list[float]] = []
        try:
            if cfg.batch_probes:
                answers = self._ask(views, questions, meter.ledger)
            else:  # one call per probe (the ablation)
                flat = [
                    self._ask([v], [[q]], meter.ledger)[0][0]
                    for v, qs in zip(views, questions, strict=True)
                    for q in qs
                ]
                answers = group_by_view(flat, questions)
        except BudgetExceeded as exc:
            raise _OutOfBudget(str(exc)) from exc
        for group in answers:
            meter.record(group, len(group))
            out.append([r.confidence for r in group])
        return out

    def _view(self, image: Image.Image, box: Box) -> Image.Image:
        """The crop, box-reduced while it stays at least twice the model's input on its short side.

        The processor shrinks every view to the model's input anyway; resampling a 2000 px crop for each
        probe was most of the search's wall time. The answer call gets the crop unreduced.
        """
        crop = image.crop(box)
        factor = min(crop.width, crop.height) // (2 * self.native_side)
        return crop.reduce(factor) if factor >= 2 else crop

    def _ask(
        self, views: Sequence[Image.Image], questions: Sequence[Sequence[str]], ledger: TokenLedger
    ) -> list[list[YesNoResult]]:
        probe_views = getattr(self.vlm, "probe_views", None)
        if probe_views is not None:
            result: list[list[YesNoResult]] = probe_views(
                views, questions, ledger, reuse_prefix=self.config.reuse_prefix
            )
            return result
        return probe_views_batched(self.vlm, views, questions, ledger)

    def _anchor(self, image: Image.Image, found: _Found) -> TreeNode | None:
        """The node ``local_levels`` above where the previous cue was found (None: too shallow, or off)."""
        levels = self.config.local_levels
        if levels is None or found.depth - levels < 1:
            return None
        cx, cy = (found.box[0] + found.box[2]) / 2, (found.box[1] + found.box[3]) / 2
        node = TreeNode((0, 0, image.width, image.height), 0)
        while node.depth < found.depth - levels:
            kids = node.expand()
            if not kids:
                return None
            node = next(k for k in kids if k.box[0] <= cx < k.box[2] and k.box[1] <= cy < k.box[3])
        return node

    def _search(
        self,
        image: Image.Image,
        cue: str,
        stop_prompt: str,
        strategy: Strategy,
        meter: _Meter,
        start: TreeNode | None = None,
        rank_by_stop: bool = False,
    ) -> _Found | None:
        """One cue's best-first search from ``start`` (the root by default)."""
        cfg, p = self.config, self.prompts
        fast = strategy == "fast"
        root = start or TreeNode((0, 0, image.width, image.height), 0)
        max_pops = cfg.max_pops if cfg.max_pops is not None else p.max_pops
        max_depth = max(1, tree_depth(image.width, image.height, self.native_side, cfg.max_depth))
        known: dict[Box, float] = {}  # stop-probe confidences already measured
        best: _Found | None = None

        def visit(node: TreeNode, confidence: float | None, **scores: float | None) -> None:
            nonlocal best
            meter.visits.append(
                Visit(
                    order=len(meter.visits),
                    cue=cue,
                    box=node.box,
                    depth=node.depth,
                    confidence=confidence,
                    **scores,
                )
            )
            if confidence is not None and (best is None or confidence > best.confidence):
                best = _Found(node.box, confidence, depth=node.depth)

        if fast and cfg.early_stop:
            (conf,) = self._probe(image, [root.box], [[stop_prompt]], meter)[0]
            known[root.box] = conf
            visit(root, conf)
            if conf >= p.answer_threshold:
                return _Found(root.box, conf, depth=root.depth)
        queue: list[tuple[float, int, TreeNode]] = [(math.inf, 0, root)]
        pops, counter = 0, 1
        relaxed = 0
        threshold = p.answer_threshold
        while queue:
            if fast and max_pops is not None and pops >= max_pops:
                break
            if pops >= 3 * max_depth + relaxed * p.relax_pops:
                if relaxed >= len(p.relaxations):
                    break
                threshold -= p.relaxations[relaxed]
                relaxed += 1
                if best is not None and best.confidence >= threshold:
                    return best
            queue.sort(key=lambda item: (-item[0], item[1]))  # global best-first, re-ranked each pop
            _, _, node = queue.pop(0)
            pops += 1
            if node.box in known:
                conf = known[node.box]
            else:
                (conf,) = self._probe(image, [node.box], [[stop_prompt]], meter)[0]
                known[node.box] = conf
                visit(node, conf)
            if conf >= threshold:
                return _Found(node.box, conf, depth=node.depth)
            if node.is_leaf(self.native_side, cfg.max_depth):
                continue
            kids = node.expand()
            if fast:
                pending = self._expand_fast(
                    image, node, kids, stop_prompt, cue, max_depth, meter, visit, rank_by_stop
                )
                for prio, kid, stop in pending:
                    if stop is not None:
                        known[kid.box] = stop
                    queue.append((prio, counter, kid))
                    counter += 1
                hits = [(stop, kid) for _, kid, stop in pending if stop is not None and stop >= threshold]
                if hits:
                    stop, kid = max(hits, key=lambda h: h[0])
                    return _Found(kid.box, stop, depth=kid.depth)
            else:
                scores = self._probe(
                    image,
                    [k.box for k in kids],
                    [[p.existence.format(o=cue), p.latent.format(o=cue)]] * len(kids),
                    meter,
                )
                for kid, (e, lat) in zip(kids, scores, strict=True):
                    prio = priority(e, lat, kid.depth, max_depth, p.bias)
                    visit(kid, None, existence=e, latent=lat, priority=prio)
                    queue.append((prio, counter, kid))
                    counter += 1
        if best is not None and best.confidence >= p.lower_threshold:
            return best
        return None

    def _expand_fast(
        self,
        image: Image.Image,
        node: TreeNode,
        kids: list[TreeNode],
        stop_prompt: str,
        cue: str,
        max_depth: int,
        meter: _Meter,
        visit: Callable[..., None],
        rank_by_stop: bool = False,
    ) -> list[tuple[float, TreeNode, float | None]]:
        """Children with priorities (and stop confidences where probed).

        With a relevance map, the best ``top_children`` by map mass get the stop and latent probes; without
        one (``relevance`` off, or a backend that cannot read attention), every child gets one probe (see
        ``ZoomPrompts``: latent, existence, or the cue's stop probe) and the best of them the stop probe: at
        most 5 probes where ZoomEye spends 9 per pop.
        """
        cfg, p = self.config, self.prompts
        masses = [0.0] * len(kids)
        ranked = list(range(len(kids)))
        wanted = self.prompts.relevance if cfg.relevance is None else cfg.relevance
        use_map = wanted and len(kids) > cfg.top_children and node.depth >= p.relevance_from_depth
        if use_map:
            rel = self._relevance(self._view(image, node.box), p.latent.format(o=cue), meter)
            if rel is None:
                use_map = False
            else:
                view = _region_box(node.box, rel.region)
                masses = [map_mass(rel.grid, view, k.box) for k in kids]
                ranked = sorted(range(len(kids)), key=lambda i: -masses[i])
        pending: list[tuple[float, TreeNode, float | None]] = []
        if use_map:
            # the map ranks the children; only the best few are probed, each with the stop and latent probes
            chosen = ranked[: cfg.top_children]
            scores = self._probe(
                image,
                [kids[i].box for i in chosen],
                [[stop_prompt, p.latent.format(o=cue)]] * len(chosen),
                meter,
            )
            for i, (stop, lat) in zip(chosen, scores, strict=True):
                prio = priority(stop, lat, kids[i].depth, max_depth, p.bias)
                visit(kids[i], stop, latent=lat, priority=prio, relevance=masses[i])
                pending.append((prio, kids[i], stop))
            rest = ranked[len(chosen) :]
            best_latent = max(lat for _, lat in scores)
            if rest and cfg.map_fallback is not None and best_latent < cfg.map_fallback:
                # the map's choice does not hold the cue: rank the rest by latent probes after all
                others = self._probe(
                    image, [kids[i].box for i in rest], [[p.latent.format(o=cue)]] * len(rest), meter
                )
                for i, (other,) in zip(rest, others, strict=True):
                    visit(kids[i], None, latent=other, priority=other, relevance=masses[i])
                    pending.append((other, kids[i], None))
                return pending
            for i in rest:
                # not probed: explored only after every probed node, in relevance order
                pending.append((-2.0 + masses[i], kids[i], None))
            return pending
        # no map: one probe per child ranks them; only the best child gets the stop probe, unless the
        # ranking probe is the stop probe itself
        latent, existence = p.latent.format(o=cue), p.existence.format(o=cue)
        if rank_by_stop:
            rank_prompt = stop_prompt
        elif p.existence_from_depth is not None and node.depth + 1 >= p.existence_from_depth:
            rank_prompt = existence
        else:
            rank_prompt = latent
        kind = {latent: "latent", existence: "existence"}.get(rank_prompt)  # the Visit field it fills
        ranks = [s[0] for s in self._probe(image, [k.box for k in kids], [[rank_prompt]] * len(kids), meter)]
        best = int(np.argmax(ranks))
        stops: list[float | None] = [None] * len(kids)
        if rank_prompt == stop_prompt:  # the ranking probe is the stop probe: every child's stop is known
            stops = list(ranks)
        else:
            (stops[best],) = self._probe(image, [kids[best].box], [[stop_prompt]], meter)[0]
        for i, (kid, rank, known) in enumerate(zip(kids, ranks, stops, strict=True)):
            # the best child's stop probe joins its rank, as ZoomEye's existence joins the latent probe
            mixed = known is not None and i == best and not rank_by_stop
            prio = priority(known or 0.0, rank, kid.depth, max_depth, p.bias) if mixed else rank
            visit(kid, known, priority=prio, **({kind: rank} if kind else {}))
            pending.append((prio, kid, known))
        return pending

    def _relevance(self, view: Image.Image, question: str, meter: _Meter) -> RelevanceMap | None:
        """One relevance map (2 probes, or 1 without normalising; 1 forward pass), or None when the backend
        cannot read attention."""
        maps = getattr(self.vlm, "relevance_maps", None)
        if maps is None:
            return None
        normalize = self.prompts.relevance_normalize
        probes = 2 if normalize else 1
        meter.check(probes, 1)
        try:
            rel: RelevanceMap = maps([view], [question], meter.ledger, normalize=normalize)[0]
        except UnsupportedRequestError:
            return None
        except BudgetExceeded as exc:
            raise _OutOfBudget(str(exc)) from exc
        meter.probes += probes
        meter.passes += rel.usage.forward_passes or 1
        return rel

    def _already_shown(
        self, image: Image.Image, found: list[_Found], cue: str, stop_prompt: str, meter: _Meter
    ) -> _Found | None:
        """One probe: does the crop found for the earlier cues already show this one?

        Objects a question relates usually sit together, so the second search is often unnecessary.
        """
        box = self._answer_box([f.box for f in found], image)
        (conf,) = self._probe(image, [box], [[stop_prompt]], meter)[0]
        meter.visits.append(Visit(order=len(meter.visits), cue=cue, box=box, depth=-1, confidence=conf))
        return _Found(box, conf) if conf >= self.prompts.answer_threshold else None

    def _tighten(self, image: Image.Image, found: _Found, fraction: float, meter: _Meter) -> _Found:
        """One relevance map of a cue's crop; the window (``tighten_crops`` of its side, at least the model's
        input) holding most of the cue's attention.

        A cue's search stops at the first node where the cue is clearly visible, often a node several times
        the model's input. With two cues the answer sees the union of two such nodes, shrunk to the input,
        and the smaller object can fall below what the model resolves: in a one-off check with the tiny VLM,
        relation answers from unions where the smaller target is under 4 input pixels were at chance (0.52,
        61 of 125 questions whose union held both targets; 0.90 above). The window keeps the union close to
        the objects (docs/benchmarks/zoom.md, "no crop tightening" row).
        """
        x0, y0, x1, y1 = found.box
        side = max(x1 - x0, y1 - y0)
        target = max(self.native_side, round(side * fraction))
        if not found.cue or target >= side:
            return found
        prompt = self.prompts.existence.format(o=found.cue)
        box = self._attended_window(image, found.box, prompt, target, found.cue, -1, meter)
        return found if box is None else _Found(box, found.confidence, found.cue)

    def _attention_crop(self, image: Image.Image, question: str, meter: _Meter) -> _Found:
        full: Box = (0, 0, image.width, image.height)
        side = round(self.native_side * self.config.window_scale)
        box = self._attended_window(image, full, question, side, question, 1, meter)
        if box is None:
            raise UnsupportedRequestError(
                f"attention_crop needs relevance maps, which {self.vlm.model_id} lacks"
            )
        return _Found(box, 0.0)

    def _attended_window(
        self, image: Image.Image, view: Box, prompt: str, side: int, cue: str, depth: int, meter: _Meter
    ) -> Box | None:
        """The ``side``-square window of ``view`` holding most of ``prompt``'s attention (one map),
        recorded as a visit; None when the backend cannot read attention."""
        rel = self._relevance(self._view(image, view), prompt, meter)
        if rel is None:
            return None
        box = best_window(rel.grid, _region_box(view, rel.region), (side, side))
        meter.visits.append(Visit(order=len(meter.visits), cue=cue, box=box, depth=depth, relevance=1.0))
        return box

    # ------------------------------------------------------------------ answering
    def _answer_box(self, crops: list[Box], image: Image.Image) -> Box:
        union = box_union(crops)
        return expand_box(
            union, self.prompts.crop_enlarge, image.width, image.height, min_side=self.native_side
        )

    def answer_from(
        self,
        image: Image.Image,
        question: str,
        options: Sequence[str] | None,
        box: Box | None,
        ledger: TokenLedger | None = None,
        *,
        context: str | None = None,
    ) -> tuple[str, list[float]]:
        """The answering call alone: from the whole image (``box`` None) or the crop (plus the whole image
        when the preset says so). Returns the answer and, with ``options``, their probabilities."""
        views = [image] if box is None else [image.crop(box)]
        if box is not None and self.prompts.answer_with_full_image:
            views = [image, *views]
        request = VLMRequest.from_prompt(question, images=views, system=context or None)
        if options:
            scored = self.vlm.score(request, list(options), ledger)
            return scored.best, scored.probabilities
        return self.vlm.generate(request, ledger).text, []

    def retry_cost(self, image: Image.Image) -> int:
        """Tokens a second look needs at least: one round of child probes plus the answer's reserve."""
        return self._answer_reserve(image) + 5 * self._probe_estimate(None)

    def _answer_reserve(self, image: Image.Image) -> int:
        """Tokens kept back for the final answer: its images at the model's cost plus a text allowance."""
        spec = getattr(self.vlm, "token_spec", None)
        per_image = spec.tokens_for(image.height, image.width) if spec is not None else 1024
        images = 2 if self.prompts.answer_with_full_image else 1
        return images * per_image + 256

    @staticmethod
    def _best_visit(visits: Sequence[Visit]) -> _Found | None:
        scored = [v for v in visits if v.confidence is not None]
        if not scored:
            return None
        top = max(scored, key=lambda v: v.confidence or -1.0)
        return _Found(top.box, float(top.confidence or 0.0))


def parse_cues(text: str) -> list[str]:
    """Objects from a cue-listing generation: split on commas, newlines and 'and'; articles dropped."""
    parts = re.split(r",|\n|;|\band\b", text)
    cues: list[str] = []
    for part in parts:
        cue = re.sub(r"^[\s\-*\d.)]*", "", part.strip())
        cue = re.sub(r"^(the|a|an)\s+", "", cue, flags=re.IGNORECASE).strip(" .")
        if cue and cue.lower() not in (c.lower() for c in cues) and len(cue) <= 60:
            cues.append(cue)
    return cues[:4]


def _region_box(view: Box, region: tuple[float, float, float, float]) -> Box:
    x0, y0, x1, y1 = view
    w, h = x1 - x0, y1 - y0
    return (
        x0 + round(region[0] * w),
        y0 + round(region[1] * h),
        x0 + round(region[2] * w),
        y0 + round(region[3] * h),
    )


def _native_side(vlm: VLM) -> int:
    """The model's input side: the image size its processor resizes to (336 when unknown)."""
    spec = getattr(vlm, "token_spec", None)
    if spec is not None:
        try:
            height, width = spec.processed_size(4096, 4096)
            return int(max(8, min(height, width)))
        except (ValueError, AttributeError):
            pass
    return 336
