"""Boxes in image pixels, and where a relevance map laid over a view puts its mass.

A box is ``(x0, y0, x1, y1)`` in pixels of the original image, half-open like ``PIL.Image.crop``.
Integer maths only, so crops tile and nest exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Box = tuple[int, int, int, int]

__all__ = [
    "Box",
    "best_window",
    "box_area",
    "box_union",
    "clamp_box",
    "expand_box",
    "grid_cells",
    "map_mass",
]


def box_area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def clamp_box(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    x0, y0 = max(0, min(x0, width - 1)), max(0, min(y0, height - 1))
    return (x0, y0, max(x0 + 1, min(x1, width)), max(y0 + 1, min(y1, height)))


def expand_box(box: Box, factor: float, width: int, height: int, min_side: int = 0) -> Box:
    """Grow a box about its centre by ``factor`` (and to at least ``min_side``), shifted to stay inside."""
    x0, y0, x1, y1 = box
    w = min(width, max(round((x1 - x0) * factor), min_side))
    h = min(height, max(round((y1 - y0) * factor), min_side))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    nx0 = round(min(max(cx - w / 2, 0), width - w))
    ny0 = round(min(max(cy - h / 2, 0), height - h))
    return (nx0, ny0, nx0 + w, ny0 + h)


def box_union(boxes: Sequence[Box]) -> Box:
    if not boxes:
        raise ValueError("box_union needs at least one box")
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def grid_cells(box: Box, rows: int, cols: int) -> list[Box]:
    """The box cut into ``rows`` x ``cols`` cells, row-major, tiling it exactly."""
    x0, y0, x1, y1 = box
    xs = [x0 + ((x1 - x0) * k) // cols for k in range(cols + 1)]
    ys = [y0 + ((y1 - y0) * k) // rows for k in range(rows + 1)]
    return [(xs[c], ys[r], xs[c + 1], ys[r + 1]) for r in range(rows) for c in range(cols)]


def map_mass(relevance: np.ndarray, view: Box, box: Box) -> float:
    """Share of a relevance map (laid over ``view``) that falls inside ``box``, by area overlap per cell."""
    rows, cols = relevance.shape
    total = float(relevance.sum())
    if total <= 0:
        return 0.0
    mass = 0.0
    for index, cell in enumerate(grid_cells(view, rows, cols)):
        overlap = box_area(
            (max(cell[0], box[0]), max(cell[1], box[1]), min(cell[2], box[2]), min(cell[3], box[3]))
        )
        if overlap:
            mass += float(relevance.flat[index]) * overlap / max(1, box_area(cell))
    return mass / total


def best_window(relevance: np.ndarray, view: Box, window: tuple[int, int], stride: int | None = None) -> Box:
    """The ``window``-sized box (w, h) inside ``view`` holding the most relevance (ViCrop's crop search)."""
    x0, y0, x1, y1 = view
    ww, wh = min(window[0], x1 - x0), min(window[1], y1 - y0)
    step = stride or max(1, min(ww, wh) // 4)
    best: tuple[float, Box] | None = None
    for top in [*range(y0, y1 - wh + 1, step), y1 - wh]:
        for left in [*range(x0, x1 - ww + 1, step), x1 - ww]:
            candidate = (left, top, left + ww, top + wh)
            mass = map_mass(relevance, view, candidate)
            if best is None or mass > best[0]:
                best = (mass, candidate)
    assert best is not None
    return best[1]
