"""``zoomeye``: the faithful ZoomEye baseline (om-ai-lab/ZoomEye).

On every pop the popped node gets the stop (answering) probe; each child gets an existence and a latent
probe; priority ``w * existence + (1 - w) * latent`` with ``w = b + (1 - b) * (depth / max_depth) ** 2``;
global best-first; the threshold relaxes after ``3 * max_depth`` pops.
"""

from __future__ import annotations

from typing import ClassVar

from foveate.zoom.context import SearchContext
from foveate.zoom.search import Expansion, TreeSearch, priority
from foveate.zoom.tree import TreeNode

__all__ = ["ZoomEye"]


class ZoomEye(TreeSearch):
    """Existence and latent probes on every child, ZoomEye's priority rule."""

    name: ClassVar[str] = "zoomeye"

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
        p = ctx.prompts
        rank_by = ctx.ranked_alone_by(kids[0].depth)
        pending: Expansion = []
        if rank_by in ("existence", "latent"):
            # experience: this probe alone led every right search of this kind of question
            prompt = p.existence.format(o=cue) if rank_by == "existence" else p.latent.format(o=cue)
            ranks = ctx.probe([k.box for k in kids], [[prompt]] * len(kids))
            for kid, (rank,) in zip(kids, ranks, strict=True):
                ctx.visit(cue, kid.box, kid.depth, None, priority=rank, **{rank_by: rank})
                pending.append((rank, kid, None))
            return pending
        scores = ctx.probe(
            [k.box for k in kids], [[p.existence.format(o=cue), p.latent.format(o=cue)]] * len(kids)
        )
        for kid, (e, lat) in zip(kids, scores, strict=True):
            prio = priority(e, lat, kid.depth, max_depth, p.bias)
            ctx.visit(cue, kid.box, kid.depth, None, existence=e, latent=lat, priority=prio)
            pending.append((prio, kid, None))
        return pending

    def worst_case_probes(self, depth: int, max_pops: int | None = None, children: int = 4) -> int:
        """``3 * depth`` pops before relaxing, each the popped node's stop probe and two per child."""
        return 3 * max(1, depth) * (1 + 2 * children)
