"""One call's pruning settings, and how many visual tokens they keep and compute (no torch needed).

The planner reads these to cost a search before it runs; the pruner (``foveate.vlm.pruning.pruner``) runs
them inside a local model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from foveate.vlm.budget import TokenBudget

__all__ = ["PruneMethod", "PruneSpec", "kept_count"]

PruneMethod = Literal["cls", "fastv"]


def kept_count(n: int, keep: float) -> int:
    """How many of ``n`` visual tokens ``keep`` retains: ``ceil(keep * n)``, at least one (0 of 0)."""
    if n <= 0:
        return 0
    # round first so that e.g. 0.1 * 640 = 64.00000000000001 keeps 64, not 65
    return min(n, max(1, math.ceil(round(keep * n, 6))))


@dataclass(frozen=True)
class PruneSpec:
    """One call's pruning settings, read from a ``TokenBudget``."""

    method: PruneMethod
    keep: float
    layer: int

    @classmethod
    def from_budget(cls, budget: TokenBudget | None) -> PruneSpec | None:
        if budget is None or budget.prune is None:
            return None
        return cls(method=budget.prune, keep=budget.keep, layer=budget.layer)

    def computed_visual(self, visual: int, images: int, depth: int) -> int:
        """Visual tokens the language model computes for a row with ``visual`` placeholders.

        ``cls``: the kept tokens (each image keeps ``ceil(keep * N)`` of its N). ``fastv``: the
        layer-averaged count, ``ceil((K * N + (depth - K) * kept) / depth)``, since the first K layers
        compute every token and the others only the kept ones.
        """
        if visual == 0:
            return 0
        if self.method == "cls":
            per_image = visual // max(images, 1)
            return max(images, 1) * kept_count(per_image, self.keep)
        kept = kept_count(visual, self.keep)
        return math.ceil((self.layer * visual + (depth - self.layer) * kept) / depth)
