"""Pictures of what an agent looked at: the zoom search's visited boxes over the image.

The picture has the image's own size (boxes are in its pixels), so it lines up with the original in any
viewer. Each visited box is outlined in a colour from red (confidence -1) through yellow to green (+1),
labelled with its visiting order; the crop the answer came from is drawn thick in blue.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageDraw

from foveate.imaging.boxes import Box

__all__ = ["confidence_color", "draw_boxes", "save_trace"]


class _VisitLike(Protocol):
    order: int
    box: Box
    confidence: float | None
    priority: float | None


def confidence_color(value: float | None) -> tuple[int, int, int]:
    """Red at -1, yellow at 0, green at +1; grey when unknown."""
    if value is None:
        return (160, 160, 160)
    v = max(-1.0, min(1.0, value))
    if v < 0:
        return (230, int(230 * (1 + v)), 40)
    return (int(230 * (1 - v)), 200, 40)


def draw_boxes(
    image: Image.Image, visits: Sequence[_VisitLike], answer_box: Box | None = None
) -> Image.Image:
    """A copy of ``image`` with the visits (and the answer crop) drawn on it."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 400))
    for visit in visits:
        score = visit.confidence if visit.confidence is not None else visit.priority
        color = confidence_color(score)
        draw.rectangle(_inclusive(visit.box), outline=color, width=width)
        label = str(visit.order) if score is None else f"{visit.order}: {score:+.2f}"
        draw.text((visit.box[0] + 2 * width, visit.box[1] + 2 * width), label, fill=color)
    if answer_box is not None:
        draw.rectangle(_inclusive(answer_box), outline=(40, 90, 255), width=3 * width)
    return canvas


def save_trace(
    image: Image.Image, visits: Sequence[_VisitLike], path: str | Path, answer_box: Box | None = None
) -> Path:
    """Draw the trace and write it as PNG; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    draw_boxes(image, visits, answer_box).save(out, format="PNG")
    return out


def _inclusive(box: Box) -> tuple[int, int, int, int]:
    """PIL rectangles include their last pixel; our boxes are half-open."""
    return (box[0], box[1], max(box[0], box[2] - 1), max(box[1], box[3] - 1))
