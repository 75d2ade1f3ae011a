"""``fast``: ZoomEye's tree, cheaper (foveate's own strategy).

- Stop at the root when it already answers (``early_stop``).
- Probe a node's children all at once (batched; each child's image and template prefix encoded once and
  shared by its probes, where the model allows).
- Rank the children by one relevance map (ViCrop's rel-att, or plain attention, per the prompts) and probe
  only the best ``top_children``, falling back to latent probes on the rest when none of those holds the
  cue; without a map, one probe per child ranks them (latent, existence from ``existence_from_depth``, or
  the cue's own stop probe) and only the best gets the stop probe. A child is checked with the stop probe
  when it is probed, so popping it costs nothing.
- ``max_pops`` ends a search that has lost its way sooner than ZoomEye's relaxation rule.
- With several cues, a later cue's search starts ``local_levels`` above where the previous cue was found,
  and each cue's crop is tightened around the cue's attention before the union is taken
  (``tighten_crops``), so the answer view keeps small objects large enough to read.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from foveate.imaging.boxes import map_mass
from foveate.zoom.context import Found, SearchContext, region_box
from foveate.zoom.search import Expansion, TreeSearch, priority
from foveate.zoom.tree import TreeNode

__all__ = ["Fast"]


class Fast(TreeSearch):
    """The same tree as ZoomEye, at a fraction of its probes."""

    name: ClassVar[str] = "fast"

    def worst_case_probes(self, depth: int, max_pops: int | None = None, children: int = 4) -> int:
        """``3 * depth`` pops, each the popped node's stop probe, one probe per child and the best child's
        stop probe, plus the root's early-stop probe. (A bound on one cue's search from the root: it does
        not count relaxation pops, further cues, a local search before the root one, or crop tightening;
        the meter enforces every cap regardless.)"""
        return 3 * max(1, depth) * (1 + children + 1) + 1

    # ------------------------------------------------------------------ hooks
    def start(self, ctx: SearchContext, root: TreeNode, stop_prompt: str, cue: str) -> float | None:
        """With ``early_stop``: one stop probe of the root (a question the whole image answers costs one)."""
        if not ctx.config.early_stop:
            return None
        (conf,) = ctx.probe([root.box], [[stop_prompt]])[0]
        ctx.visit(cue, root.box, root.depth, conf)
        return conf

    def pop_limit(self, ctx: SearchContext) -> int | None:
        return ctx.config.max_pops if ctx.config.max_pops is not None else ctx.prompts.max_pops

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
        return [self._tighten(ctx, f, fraction) for f in found]

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
        cfg, p = ctx.config, ctx.prompts
        wanted = p.relevance if cfg.relevance is None else cfg.relevance
        if wanted and len(kids) > cfg.top_children and node.depth >= p.relevance_from_depth:
            rel = ctx.relevance(ctx.view(node.box), p.latent.format(o=cue))
            if rel is not None:
                view = region_box(node.box, rel.region)
                masses = [map_mass(rel.grid, view, k.box) for k in kids]
                return self._by_map(ctx, kids, masses, cue, stop_prompt, max_depth)
        return self._by_probes(ctx, node, kids, cue, stop_prompt, max_depth, rank_by_stop)

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
        scores = ctx.probe(
            [kids[i].box for i in chosen], [[stop_prompt, p.latent.format(o=cue)]] * len(chosen)
        )
        pending: Expansion = []
        for i, (stop, lat) in zip(chosen, scores, strict=True):
            prio = priority(stop, lat, kids[i].depth, max_depth, p.bias)
            ctx.visit(cue, kids[i].box, kids[i].depth, stop, latent=lat, priority=prio, relevance=masses[i])
            pending.append((prio, kids[i], stop))
        rest = ranked[len(chosen) :]
        best_latent = max(lat for _, lat in scores)
        if rest and cfg.map_fallback is not None and best_latent < cfg.map_fallback:
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
        if rank_by_stop:
            rank_prompt = stop_prompt
        elif p.existence_from_depth is not None and node.depth + 1 >= p.existence_from_depth:
            rank_prompt = existence
        else:
            rank_prompt = latent
        kind = {latent: "latent", existence: "existence"}.get(rank_prompt)  # the Visit field it fills
        ranks = [s[0] for s in ctx.probe([k.box for k in kids], [[rank_prompt]] * len(kids))]
        best = int(np.argmax(ranks))
        stops: list[float | None] = [None] * len(kids)
        if rank_prompt == stop_prompt:  # the ranking probe is the stop probe: every child's stop is known
            stops = list(ranks)
        else:
            (stops[best],) = ctx.probe([kids[best].box], [[stop_prompt]])[0]
        pending: Expansion = []
        for i, (kid, rank, known) in enumerate(zip(kids, ranks, stops, strict=True)):
            # the best child's stop probe joins its rank, as ZoomEye's existence joins the latent probe
            mixed = known is not None and i == best and not rank_by_stop
            prio = priority(known or 0.0, rank, kid.depth, max_depth, p.bias) if mixed else rank
            ctx.visit(cue, kid.box, kid.depth, known, priority=prio, **({kind: rank} if kind else {}))
            pending.append((prio, kid, known))
        return pending

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

    def _tighten(self, ctx: SearchContext, found: Found, fraction: float) -> Found:
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
        target = max(ctx.native_side, round(side * fraction))
        if not found.cue or target >= side:
            return found
        prompt = ctx.prompts.existence.format(o=found.cue)
        box = ctx.attended_window(found.box, prompt, target, found.cue, -1)
        return found if box is None else Found(box, found.confidence, found.cue)
