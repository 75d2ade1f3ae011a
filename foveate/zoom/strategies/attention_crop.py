"""``attention_crop``: ViCrop (saccharomycetes/mllms_know): one relevance map of the whole image, the best
window over it (``window_scale`` native sides), and the answer from that window."""

from __future__ import annotations

from typing import ClassVar

from foveate.errors import UnsupportedRequestError
from foveate.zoom.context import Found, SearchContext

__all__ = ["AttentionCrop"]


class AttentionCrop:
    """One map of the question's attention; answer from the window holding most of it."""

    name: ClassVar[str] = "attention_crop"
    lists_cues: ClassVar[bool] = True

    def search(self, ctx: SearchContext, question: str, cues: list[str]) -> None:
        side = round(ctx.native_side * ctx.config.window_scale)
        box = ctx.attended_window(ctx.full, question, side, question, 1)
        if box is None:
            raise UnsupportedRequestError(
                f"attention_crop needs relevance maps, which {ctx.vlm.model_id} lacks"
            )
        ctx.found.append(Found(box, 0.0))

    def worst_case_probes(self, depth: int, max_pops: int | None = None, children: int = 4) -> int:
        """One relevance map: two prompts (the question and rel-att's generic one)."""
        return 2
