"""``fast``: ZoomEye's tree, at a fraction of its forward passes (foveate's own strategy).

Forward passes are what a GPU pays for (a batch of 16 probes costs about what one does), so ``fast`` is
built to spend few of them, each well filled:

- Stop early (``early_stop``): one pass asks the root whether it already answers, a second its four
  children (a large target is lost when the whole image is shrunk to the input, yet plain in a quarter).
- Skip the levels whose views shrink a small target out of sight (``first_level_side``): the root's
  expansion ranks the first level whose nodes are at most a few native sides (16 nodes of a 2000 px image,
  64 of an 8000 px one, in one or a few passes) instead of walking down quadrants whose probes rank nothing.
- One probe per child ranks them (latent, existence from ``existence_from_depth``, or the cue's own stop
  probe); only the best gets the stop probe, and in that same pass its own children are ranked
  (``ask_ahead``), so a search that goes straight down pays one pass per level. A popped node's stop
  probe likewise carries its children's ranking. When the best child's existence probe says the cue is
  not there (``existence_floor``), no stop probe is asked and the search moves on.
- With a relevance map (a model whose attention localises), the map ranks the children and only the best
  ``top_children`` are probed, falling back to latent probes on the rest when none of those holds the cue.
- ``max_pops`` ends a search that has lost its way sooner than ZoomEye's relaxation rule.
- With several cues, a later cue's search starts ``local_levels`` above where the previous cue was found,
  and each cue's crop is tightened around the cue's attention before the union is taken (one pass for all
  cues, ``tighten_crops``), so the answer view keeps small objects large enough to read.

A probe already answered in the search is never asked again (``SearchContext.answered``). What each part
buys is measured by the ablation rows of docs/benchmarks/zoom.md.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from foveate.imaging.boxes import Box, map_mass
from foveate.zoom.config import ZoomConfig
from foveate.zoom.context import Found, SearchContext, region_box
from foveate.zoom.search import Expansion, TreeSearch, priority
from foveate.zoom.tree import TreeNode, tree_depth

__all__ = ["Fast", "first_level"]


def first_level(width: int, height: int, native_side: int, cfg: ZoomConfig) -> int:
    """The shallowest tree level ``fast`` ranks: the first whose nodes' longer side is at most
    ``first_level_side`` native sides, but no deeper than ``max_first_level_nodes`` nodes allow."""
    if cfg.first_level_side is None:
        return 1
    side, depth = float(max(width, height)), 0
    while side > cfg.first_level_side * native_side and 4 ** (depth + 1) <= cfg.max_first_level_nodes:
        side, depth = side / 2, depth + 1
    return max(1, depth)


class Fast(TreeSearch):
    """The same tree as ZoomEye, at a fraction of its probes."""

    name: ClassVar[str] = "fast"

    def worst_case_probes(self, depth: int, max_pops: int | None = None, children: int = 4) -> int:
        """The root, then its children (``1 + children``), the first level ranked (at most
        ``max_first_level_nodes``), then ``3 * depth`` pops, each the popped node's stop probe, one probe per
        child, the best child's stop probe and the ranking of its children asked ahead. (A bound on one
        cue's search from the root: it does not count relaxation pops, further cues, a local search before
        the root one, or crop tightening; the meter enforces every cap regardless.)"""
        first = int(ZoomConfig.model_fields["max_first_level_nodes"].default)
        return 1 + children + first + 3 * max(1, depth) * (1 + children + 1 + children)

    # ------------------------------------------------------------------ hooks
    def start(
        self, ctx: SearchContext, root: TreeNode, stop_prompt: str, cue: str, rank_by_stop: bool
    ) -> list[tuple[TreeNode, float]]:
        """With ``early_stop``: ask the root whether it already answers, then, if not, its children (one pass
        each): a question the whole image or a quarter of it answers costs one or two passes and at most 5
        probes (a large target can be lost when the whole image is shrunk to the input, yet plain in a
        quarter of it). A search starting below the root (a later cue's, near the
        previous one) ranks the node's children in the same pass."""
        if not ctx.config.early_stop or (ctx.prior is not None and ctx.prior.skip_early_stop):
            return []
        below = root.depth > 0
        ahead = self.ask_ahead(ctx, root, cue, stop_prompt, rank_by_stop) if below else []
        conf = ctx.probe_ahead(root.box, stop_prompt, ahead)
        ctx.visit(cue, root.box, root.depth, conf)
        measured = [(root, conf)]
        if (
            conf >= ctx.prompts.answer_threshold
            or below
            or root.is_leaf(ctx.native_side, ctx.config.max_depth)
        ):
            return measured
        kids = root.expand()
        confs = ctx.probe([k.box for k in kids], [[stop_prompt]] * len(kids))
        for kid, (kid_conf,) in zip(kids, confs, strict=True):
            ctx.visit(cue, kid.box, kid.depth, kid_conf)
            measured.append((kid, kid_conf))
        return measured

    def pop_limit(self, ctx: SearchContext) -> int | None:
        """The config's ``max_pops``, else the prompts' ``max_pops``, else their ``pops_per_level`` times the
        tree's depth (a deeper tree is given more pops); None: ZoomEye's rule alone."""
        cfg, p = ctx.config, ctx.prompts
        if cfg.max_pops is not None:
            return cfg.max_pops
        if p.max_pops is not None:
            return p.max_pops
        if p.pops_per_level is not None:
            depth = tree_depth(ctx.image.width, ctx.image.height, ctx.native_side, cfg.max_depth)
            return max(1, round(p.pops_per_level * max(1, depth)))
        return None

    def search_cue(
        self, ctx: SearchContext, cue: str, stop_prompt: str, found: list[Found], rank_by_stop: bool
    ) -> Found | None:
        """A later cue: first near the previous one (``local_levels`` up), or, with ``local_levels`` off, one
        probe asking whether the crop found so far already shows it; then from the root."""
        if found and ctx.config.local_levels is None:
            reused = self._already_shown(ctx, found, cue, stop_prompt)
            if reused is not None:
                return reused
        anchor = self._anchor(ctx, found[-1]) if found else None
        if anchor is not None:
            outcome = self.best_first(ctx, cue, stop_prompt, anchor, rank_by_stop)
            if outcome is not None:
                return outcome
        return self.best_first(ctx, cue, stop_prompt, None, rank_by_stop)

    def finish(self, ctx: SearchContext, found: list[Found]) -> list[Found]:
        fraction = ctx.config.tighten_crops
        if fraction is None or len(found) < 2:
            return found
        return self._tighten(ctx, found, fraction)

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
        """Children with priorities (and stop confidences where probed).

        With a relevance map, the best ``top_children`` by map mass get the stop and latent probes; without
        one (``relevance`` off, or a model that cannot read attention), every child gets one probe (see
        ``ZoomPrompts``: latent, existence, or the cue's stop probe) and the best of them the stop probe: at
        most 5 probes where ZoomEye spends 9 per pop.
        """
        p = ctx.prompts
        kids = self._kids(ctx, node)
        if self._uses_map(ctx, node, kids):
            rel = ctx.relevance(ctx.view(node.box), p.latent.format(o=cue))
            if rel is not None:
                view = region_box(node.box, rel.region)
                masses = [map_mass(rel.grid, view, k.box) for k in kids]
                return self._by_map(ctx, kids, masses, cue, stop_prompt, max_depth)
        return self._by_probes(ctx, node, kids, cue, stop_prompt, max_depth, rank_by_stop)

    def ask_ahead(
        self, ctx: SearchContext, node: TreeNode, cue: str, stop_prompt: str, rank_by_stop: bool
    ) -> list[tuple[Box, str]]:
        """With ``ask_ahead``: a popped node's children are ranked in its stop probe's pass (wasted only when
        the stop probe fires), unless a relevance map ranks them."""
        if not ctx.config.ask_ahead:
            return []
        kids = self._kids(ctx, node)
        if not kids or self._uses_map(ctx, node, kids):
            return []
        prompt = self._rank_prompt(ctx, kids[0], cue, stop_prompt, rank_by_stop)
        return [(kid.box, prompt) for kid in kids]

    @staticmethod
    def _kids(ctx: SearchContext, node: TreeNode) -> list[TreeNode]:
        """The nodes an expansion ranks: the node's children, or, above the first level worth probing, its
        descendants on that level (``first_level_side``): views that shrink a target out of sight rank
        nothing, so probing them only spends passes."""
        cfg = ctx.config
        first = first_level(ctx.image.width, ctx.image.height, ctx.native_side, cfg)

        def below(n: TreeNode) -> list[TreeNode]:
            return [] if n.is_leaf(ctx.native_side, cfg.max_depth) else n.expand()

        kids = below(node)
        while kids and kids[0].depth < first:
            deeper = [d for k in kids for d in (below(k) or [k])]
            if deeper == kids:
                break
            kids = deeper
        return kids

    @staticmethod
    def _uses_map(ctx: SearchContext, node: TreeNode, kids: list[TreeNode]) -> bool:
        """Whether ``node``'s ``kids`` are ranked by a relevance map (wanted, readable, worth it)."""
        cfg, p = ctx.config, ctx.prompts
        wanted = p.relevance if cfg.relevance is None else cfg.relevance
        return (
            bool(wanted)
            and ctx.vlm.profile.relevance_maps
            and len(kids) > cfg.top_children
            and node.depth >= p.relevance_from_depth
        )

    # ------------------------------------------------------------------ ranking children
    def _by_map(
        self,
        ctx: SearchContext,
        kids: list[TreeNode],
        masses: list[float],
        cue: str,
        stop_prompt: str,
        max_depth: int,
    ) -> Expansion:
        """The map ranks the children; only the best few are probed, each with the stop and latent probes."""
        cfg, p = ctx.config, ctx.prompts
        ranked = sorted(range(len(kids)), key=lambda i: -masses[i])
        chosen = ranked[: cfg.top_children]
        latent = p.latent.format(o=cue)
        boxes = [kids[i].box for i in chosen]
        stops: list[float | None] = [None] * len(chosen)
        if not ctx.asks_stop(kids[0].depth):
            # experience: no answer came from this high up, so no stop probe; the latent probe still ranks
            latents = [lat for (lat,) in ctx.probe(boxes, [[latent]] * len(chosen))]
        else:
            both = ctx.probe(boxes, [[stop_prompt, latent]] * len(chosen))
            stops, latents = [stop for stop, _ in both], [lat for _, lat in both]
        pending: Expansion = []
        for i, stop, lat in zip(chosen, stops, latents, strict=True):
            prio = lat if stop is None else priority(stop, lat, kids[i].depth, max_depth, p.bias)
            ctx.visit(cue, kids[i].box, kids[i].depth, stop, latent=lat, priority=prio, relevance=masses[i])
            pending.append((prio, kids[i], stop))
        rest = ranked[len(chosen) :]
        best_latent = max(latents)
        # experience: the map alone led the right searches from this depth on, so its choice is kept
        trusted = ctx.ranked_alone_by(kids[0].depth) == "relevance"
        if rest and cfg.map_fallback is not None and best_latent < cfg.map_fallback and not trusted:
            # the map's choice does not hold the cue: rank the rest by latent probes after all
            others = ctx.probe([kids[i].box for i in rest], [[p.latent.format(o=cue)]] * len(rest))
            for i, (other,) in zip(rest, others, strict=True):
                ctx.visit(
                    cue, kids[i].box, kids[i].depth, None, latent=other, priority=other, relevance=masses[i]
                )
                pending.append((other, kids[i], None))
            return pending
        for i in rest:
            # not probed: explored only after every probed node, in relevance order
            pending.append((-2.0 + masses[i], kids[i], None))
        return pending

    def _by_probes(
        self,
        ctx: SearchContext,
        node: TreeNode,
        kids: list[TreeNode],
        cue: str,
        stop_prompt: str,
        max_depth: int,
        rank_by_stop: bool,
    ) -> Expansion:
        """No map: one probe per child ranks them; only the best child gets the stop probe, unless the
        ranking probe is the stop probe itself."""
        p = ctx.prompts
        latent, existence = p.latent.format(o=cue), p.existence.format(o=cue)
        rank_prompt = self._rank_prompt(ctx, kids[0], cue, stop_prompt, rank_by_stop)
        kind = {latent: "latent", existence: "existence"}.get(rank_prompt)  # the Visit field it fills
        ranks = [s[0] for s in ctx.probe([k.box for k in kids], [[rank_prompt]] * len(kids))]
        best = int(np.argmax(ranks))
        stops: list[float | None] = [None] * len(kids)
        floor = ctx.config.existence_floor
        if rank_prompt == stop_prompt:  # the ranking probe is the stop probe: every child's stop is known
            stops = list(ranks)
        elif kind == "existence" and floor is not None and ranks[best] < floor:
            pass  # no child shows the cue: none is worth a stop probe (the queue moves on elsewhere)
        elif not ctx.asks_stop(kids[best].depth):
            pass  # experience: no answer came from this high up; its pop expands it without asking
        else:
            # The best child is popped next unless its stop probe fires, and its children are then ranked:
            # ask that ranking in the same pass as the stop probe (one pass per level instead of two; the
            # four probes are wasted only where the search stops)
            ahead = self.ask_ahead(ctx, kids[best], cue, stop_prompt, rank_by_stop)
            stops[best] = ctx.probe_ahead(kids[best].box, stop_prompt, ahead)
        pending: Expansion = []
        for i, (kid, rank, known) in enumerate(zip(kids, ranks, stops, strict=True)):
            # the best child's stop probe joins its rank, as ZoomEye's existence joins the latent probe
            mixed = known is not None and i == best and not rank_by_stop
            prio = priority(known or 0.0, rank, kid.depth, max_depth, p.bias) if mixed else rank
            ctx.visit(cue, kid.box, kid.depth, known, priority=prio, **({kind: rank} if kind else {}))
            pending.append((prio, kid, known))
        return pending

    @staticmethod
    def _rank_prompt(
        ctx: SearchContext, node: TreeNode, cue: str, stop_prompt: str, rank_by_stop: bool
    ) -> str:
        """The probe that ranks nodes like ``node``: the cue's stop probe (``rank_by_stop``), existence for
        nodes at most ``existence_below_side`` native sides (else from ``existence_from_depth``), latent
        for larger ones."""
        p = ctx.prompts
        if rank_by_stop:
            return stop_prompt
        if p.existence_below_side is not None:
            x0, y0, x1, y1 = node.box
            small = max(x1 - x0, y1 - y0) <= p.existence_below_side * ctx.native_side
        else:
            small = p.existence_from_depth is not None and node.depth >= p.existence_from_depth
        return p.existence.format(o=cue) if small else p.latent.format(o=cue)

    # ------------------------------------------------------------------ several cues
    def _already_shown(
        self, ctx: SearchContext, found: list[Found], cue: str, stop_prompt: str
    ) -> Found | None:
        """One probe: does the crop found for the earlier cues already show this one?

        Objects a question relates usually sit together, so the second search is often unnecessary.
        """
        box = ctx.answer_box([f.box for f in found])
        (conf,) = ctx.probe([box], [[stop_prompt]])[0]
        ctx.visit(cue, box, -1, conf)
        return Found(box, conf) if conf >= ctx.prompts.answer_threshold else None

    @staticmethod
    def _anchor(ctx: SearchContext, found: Found) -> TreeNode | None:
        """The node ``local_levels`` above where the previous cue was found (None: too shallow, or off)."""
        levels = ctx.config.local_levels
        if levels is None or found.depth - levels < 1:
            return None
        cx, cy = (found.box[0] + found.box[2]) / 2, (found.box[1] + found.box[3]) / 2
        node = TreeNode(ctx.full, 0)
        while node.depth < found.depth - levels:
            kids = node.expand()
            if not kids:
                return None
            node = next(k for k in kids if k.box[0] <= cx < k.box[2] and k.box[1] <= cy < k.box[3])
        return node

    def _tighten(self, ctx: SearchContext, found: list[Found], fraction: float) -> list[Found]:
        """One relevance map of each cue's crop (all in one call); for each, the window (``tighten_crops`` of
        its side, at least the model's input) holding most of the cue's attention.

        A cue's search stops at the first node where the cue is clearly visible, often a node several times
        the model's input. With two cues the answer sees the union of two such nodes, shrunk to the input,
        and the smaller object can fall below what the model resolves. The window keeps the union close to
        the objects (docs/benchmarks/zoom.md, "no crop tightening" row: relation accuracy without it).
        """
        todo: list[tuple[int, int]] = []  # (index into found, window side)
        for i, f in enumerate(found):
            x0, y0, x1, y1 = f.box
            side = max(x1 - x0, y1 - y0)
            target = max(ctx.native_side, round(side * fraction))
            if f.cue and target < side:
                todo.append((i, target))
        if not todo:
            return found
        boxes = ctx.attended_windows(
            [found[i].box for i, _ in todo],
            [ctx.prompts.existence.format(o=found[i].cue) for i, _ in todo],
            [side for _, side in todo],
            [found[i].cue for i, _ in todo],
            -1,
        )
        if boxes is None:
            return found
        out = list(found)
        for (i, _), box in zip(todo, boxes, strict=True):
            out[i] = Found(box, found[i].confidence, found[i].cue)
        return out
