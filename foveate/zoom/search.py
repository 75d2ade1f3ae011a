"""The strategy contract, and the best-first tree search that ``zoomeye`` and ``fast`` share.

A ``ZoomStrategy`` turns a question and its cues into the crops to answer from (``search``) and says how
many probes it can spend at most on a tree of a given depth (``worst_case_probes``, which the budget
planner sizes the search by). ``TreeSearch`` is the template for strategies that walk ZoomEye's image tree:
one cue after another, each a global best-first search whose steps a subclass fills in, as smolagents'
``MultiStepAgent`` runs one loop around a ``_step`` its subclasses define:

- ``expand`` (required): the children of a popped node, each with a priority and, when it was asked, its
  stop confidence;
- ``start``: probes before the loop (``fast`` asks the root and its children whether they already answer);
- ``pop_limit``: pops per cue before giving up (``fast``'s cap);
- ``ask_ahead``: probes to batch with a popped node's stop probe (``fast`` ranks its children there);
- ``search_cue``: how one cue's search begins (``fast`` starts near the previous cue);
- ``finish``: what happens to the cues' crops at the end (``fast`` tightens them).
"""

from __future__ import annotations

import math
from typing import ClassVar, Protocol, runtime_checkable

from foveate.imaging.boxes import Box
from foveate.zoom.context import Found, SearchContext
from foveate.zoom.tree import TreeNode, tree_depth

__all__ = ["Expansion", "TreeSearch", "ZoomStrategy", "depth_weight", "priority"]

Expansion = list[tuple[float, TreeNode, "float | None"]]
"""Children of a popped node: ``(priority, child, stop confidence or None when not asked)``."""


@runtime_checkable
class ZoomStrategy(Protocol):
    """How a zoom search finds the crops that answer a question."""

    @property
    def name(self) -> str:
        """The name configs and workflows use (``ZoomConfig(strategy=...)``, ``zoom: {strategy: ...}``)."""
        ...

    @property
    def lists_cues(self) -> bool:
        """Whether the search needs the question's cues (the agent asks the model when none are given)."""
        ...

    def search(self, ctx: SearchContext, question: str, cues: list[str]) -> None:
        """Find the crops to answer from, one per cue, into ``ctx.found`` (left empty: the whole image).
        Spend only through ``ctx``: ``SearchStopped`` may end the search at any call, and the agent then
        answers from ``ctx.found`` as it stands (or, when it is empty, the best node visited)."""
        ...

    def worst_case_probes(self, depth: int, max_pops: int | None = None, children: int = 4) -> int:
        """An upper bound on the probes of one search over a tree ``depth`` levels deep."""
        ...


NARROW_WINDOWS = 9
"""The windows ``halves`` gives a crop (three x offsets by three y offsets): ``narrow``'s probes per cue."""


def halves(box: Box) -> list[Box]:
    """The nine windows of half ``box``'s longer side (at most its sides), a quarter of it apart."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    side = max(w, h) // 2
    ww, hh = min(side, w), min(side, h)
    xs = [x0 + round(f * (w - ww)) for f in (0.0, 0.5, 1.0)]
    ys = [y0 + round(f * (h - hh)) for f in (0.0, 0.5, 1.0)]
    return [(x, y, x + ww, y + hh) for y in ys for x in xs]


def narrow(ctx: SearchContext, found: list[Found]) -> None:
    """``ZoomPrompts.narrow_cues``: each cue's crop becomes the half-side window whose existence probe is
    most confident, where that reaches the answer threshold (one pass for every cue; crops under the
    model's input side, and the whole image, stay)."""
    p = ctx.prompts
    todo = [
        f
        for f in found
        if f.box != ctx.full and max(f.box[2] - f.box[0], f.box[3] - f.box[1]) >= ctx.native_side
    ]
    if not todo:
        return
    windows = [halves(f.box) for f in todo]
    asked = [p.existence.format(o=f.cue) for f in todo]
    confs = ctx.probe(
        [w for ws in windows for w in ws], [[q] for q, ws in zip(asked, windows, strict=True) for _ in ws]
    )
    at = 0
    for f, ws in zip(todo, windows, strict=True):
        mine = [c for (c,) in confs[at : at + len(ws)]]
        at += len(ws)
        for w, c in zip(ws, mine, strict=True):
            ctx.visit(f.cue, w, -1, existence=c)  # not a tree node (depth -1, as crop tightening's views)
        best = max(range(len(mine)), key=mine.__getitem__)
        if mine[best] >= p.answer_threshold:
            f.box = ws[best]


def depth_weight(depth: int, max_depth: int, bias: float) -> float:
    """ZoomEye's ``w``: trust the existence probe more the deeper the node (small views show the object)."""
    if max_depth <= 0:
        return 1.0
    return bias + (1 - bias) * (depth / max_depth) ** 2


def priority(existence: float, latent: float, depth: int, max_depth: int, bias: float) -> float:
    """ZoomEye's priority ``w * existence + (1 - w) * latent``."""
    w = depth_weight(depth, max_depth, bias)
    return w * existence + (1 - w) * latent


class TreeSearch:
    """Best-first search of the image tree, one cue at a time; subclasses say how to expand a node."""

    name: ClassVar[str] = ""
    lists_cues: ClassVar[bool] = True

    def search(self, ctx: SearchContext, question: str, cues: list[str]) -> None:
        found = ctx.found
        single = len(cues) <= 1
        for cue in cues or [question]:
            stop_prompt = (
                ctx.prompts.answering.format(q=question)
                if single
                else ctx.prompts.cue_answering.format(o=cue)
            )
            rank_by_stop = not single and ctx.prompts.rank_cues_by_stop
            outcome = self.search_cue(ctx, cue, stop_prompt, found, rank_by_stop)
            if outcome is None and ctx.prior is not None and ctx.prior.changes:
                # the prior pointed where nothing was found: the plain search, paying only for new probes
                prior, ctx.prior = ctx.prior, None
                ctx.fallbacks += 1
                try:
                    outcome = self.search_cue(ctx, cue, stop_prompt, found, rank_by_stop)
                finally:
                    ctx.prior = prior
            if outcome is not None:
                outcome.cue = cue
                found.append(outcome)
        if ctx.prompts.narrow_cues:
            narrow(ctx, [f for f in found if f.cue in cues])
        ctx.found = self.finish(ctx, list(found))

    # ------------------------------------------------------------------ hooks
    def search_cue(
        self, ctx: SearchContext, cue: str, stop_prompt: str, found: list[Found], rank_by_stop: bool
    ) -> Found | None:
        """One cue's search; by default from the root."""
        return self.best_first(ctx, cue, stop_prompt, None, rank_by_stop)

    def start(
        self, ctx: SearchContext, root: TreeNode, stop_prompt: str, cue: str, rank_by_stop: bool
    ) -> list[tuple[TreeNode, float]]:
        """Stop confidences measured before the loop (the root's, maybe its children's); by default none.
        The search returns the best of them if it reaches the threshold."""
        return []

    def pop_limit(self, ctx: SearchContext) -> int | None:
        """Pops per cue before the search gives up; None: ZoomEye's relaxation rule alone."""
        return None

    def first_nodes(self, ctx: SearchContext, root: TreeNode, cue: str) -> Expansion | None:
        """The nodes the queue starts with, ranked; None: the root alone, to be walked down from (the
        default)."""
        return None

    def ask_ahead(
        self, ctx: SearchContext, node: TreeNode, cue: str, stop_prompt: str, rank_by_stop: bool
    ) -> list[tuple[Box, str]]:
        """Probes to ask in the same pass as a popped node's stop probe, ``(box, prompt)`` each; their answers
        wait in ``ctx.answered`` for ``expand``. By default none."""
        return []

    def expand(
        self,
        ctx: SearchContext,
        node: TreeNode,
        kids: list[TreeNode],
        cue: str,
        stop_prompt: str,
        max_depth: int,
        rank_by_stop: bool,
    ) -> Expansion:
        """The children of ``node`` with their priorities (and stop confidences where they were probed)."""
        raise NotImplementedError

    def finish(self, ctx: SearchContext, found: list[Found]) -> list[Found]:
        """The cues' crops, as the answer should see them; by default unchanged. Replaces ``ctx.found`` only
        when it returns, so a search stopped here answers from the crops as they were."""
        return found

    # ------------------------------------------------------------------ the loop
    def best_first(
        self, ctx: SearchContext, cue: str, stop_prompt: str, start: TreeNode | None, rank_by_stop: bool
    ) -> Found | None:
        """One cue's best-first search from ``start`` (the root by default).

        Each pop asks the popped node's stop probe (unless known), stops when it reaches the threshold, and
        expands the node otherwise; after ``3 * max_depth`` pops the threshold relaxes step by step
        (ZoomEye's rule). With nothing over the threshold, the best node over ``lower_threshold`` answers.
        """
        p, cfg = ctx.prompts, ctx.config
        root = start or TreeNode(ctx.full, 0)
        max_depth = max(1, tree_depth(ctx.image.width, ctx.image.height, ctx.native_side, cfg.max_depth))
        max_pops = self.pop_limit(ctx)
        prior = ctx.prior
        if prior is not None and prior.max_pops is not None:
            max_pops = prior.max_pops if max_pops is None else min(max_pops, prior.max_pops)
        known: dict[tuple[int, int, int, int], float] = {}  # stop-probe confidences already measured
        best: Found | None = None

        def seen(node: TreeNode, confidence: float) -> None:
            nonlocal best
            if best is None or confidence > best.confidence:
                best = Found(node.box, confidence, depth=node.depth)

        for node, conf in self.start(ctx, root, stop_prompt, cue, rank_by_stop):
            known[node.box] = conf
            seen(node, conf)
        if best is not None and best.confidence >= p.answer_threshold:
            return best
        first = self.first_nodes(ctx, root, cue)
        queue: list[tuple[float, int, TreeNode]] = (
            [(math.inf, 0, root)]
            if first is None
            else [(prio, i, node) for i, (prio, node, _) in enumerate(first)]
        )
        pops, counter = 0, len(queue)
        relaxed = 0
        threshold = p.answer_threshold
        while queue:
            if max_pops is not None and pops >= max_pops:
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
            # every pop is recorded (``popped``), also when its confidence came free with its ranking
            # (``fast``), so that experience counts pops in the unit a prior's ``max_pops`` caps
            if node.box in known:
                conf = known[node.box]
                ctx.popped(cue, node.box, node.depth, conf)
            elif not ctx.asks_stop(node.depth):
                conf = -1.0  # experience: no answer ever came from this high up; expand without asking
                ctx.popped(cue, node.box, node.depth)
            else:
                ahead = self.ask_ahead(ctx, node, cue, stop_prompt, rank_by_stop)
                conf = ctx.probe_ahead(node.box, stop_prompt, ahead)
                known[node.box] = conf
                ctx.popped(cue, node.box, node.depth, conf)
                seen(node, conf)
            if conf >= threshold:
                return Found(node.box, conf, depth=node.depth)
            if node.is_leaf(ctx.native_side, cfg.max_depth):
                continue
            pending = self.expand(ctx, node, node.expand(), cue, stop_prompt, max_depth, rank_by_stop)
            for prio, kid, stop in pending:
                if stop is not None:
                    known[kid.box] = stop
                    seen(kid, stop)
                queue.append((prio, counter, kid))
                counter += 1
            hits = [(stop, kid) for _, kid, stop in pending if stop is not None and stop >= threshold]
            if hits:
                stop, kid = max(hits, key=lambda h: h[0])
                return Found(kid.box, stop, depth=kid.depth)
        if best is not None and best.confidence >= p.lower_threshold:
            return best
        return None
