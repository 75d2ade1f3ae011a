"""InternVL: ZoomEye's wording with its thresholds for InternVL (its confidences sit lower); foveate
cannot predict its token counts, prune it or read its attention."""

from __future__ import annotations

from foveate.vlm.profile import Family
from foveate.vlm.prompts import ZoomPrompts

__all__ = ["FAMILY"]

FAMILY = Family(
    name="internvl",
    model_types=("internvl",),
    zoom=ZoomPrompts(bias=0.6, answer_threshold=0.2, lower_threshold=-0.2),
)
