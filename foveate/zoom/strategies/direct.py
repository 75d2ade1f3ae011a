"""``direct``: no search; the answer comes from the whole image (the baseline every search must beat)."""

from __future__ import annotations

from typing import ClassVar

from foveate.zoom.context import SearchContext

__all__ = ["Direct"]


class Direct:
    """Answers from the whole image: no probes, no cues."""

    name: ClassVar[str] = "direct"
    lists_cues: ClassVar[bool] = False

    def search(self, ctx: SearchContext, question: str, cues: list[str]) -> None:
        return None

    def worst_case_probes(self, depth: int, max_pops: int | None = None, children: int = 4) -> int:
        return 0
