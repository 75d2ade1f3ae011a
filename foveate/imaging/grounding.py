"""Grounding: did the crop an answer was given from show what the question is about?

A right answer from a crop that shows none of the targets is right by luck ("right for the wrong reason";
ViEBench found it in 38% of DeepEyes' right answers); a wrong answer from a crop that shows them all was
seen and misread. Wherever the ground-truth boxes are known (a benchmark, a labelled file), foveate reports
both, with one rule: a crop holds a target when it holds the target's centre, and the whole image (no crop)
holds everything.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from foveate.imaging.boxes import Box

__all__ = ["Grounding", "grounding", "holds_centre"]


def holds_centre(crop: Box | None, target: Box) -> bool:
    """Whether ``crop`` (None: the whole image) holds the centre of ``target``."""
    if crop is None:
        return True
    cx, cy = (target[0] + target[2]) / 2, (target[1] + target[3]) / 2
    return crop[0] <= cx < crop[2] and crop[1] <= cy < crop[3]


class Grounding(BaseModel):
    """Where the answer was looked for, against where the targets are."""

    model_config = ConfigDict(frozen=True)

    crop: Box | None
    """The crop the answer was given from (None: the whole image)."""
    targets: list[Box]
    """The ground-truth boxes of the objects the question is about."""
    held: list[bool]
    """For each target, whether the crop holds its centre."""

    @property
    def holds_all(self) -> bool:
        """Every target was in view."""
        return all(self.held)

    @property
    def holds_any(self) -> bool:
        """At least one target was in view (a right answer without it is a guess)."""
        return any(self.held)


def grounding(crop: Box | None, targets: Sequence[Box]) -> Grounding:
    """The grounding of an answer given from ``crop`` about objects at ``targets``."""
    boxes = [(int(t[0]), int(t[1]), int(t[2]), int(t[3])) for t in targets]
    return Grounding(crop=crop, targets=boxes, held=[holds_centre(crop, t) for t in boxes])
