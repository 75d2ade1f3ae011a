"""Boxes and the image tree that zoom search walks.

A box is ``(x0, y0, x1, y1)`` in pixels of the original image, half-open like ``PIL.Image.crop``. The tree
is ZoomEye's: the root is the whole image; a node splits into 2x2 quadrants, or into four strips when one
side is at least twice the other (so a wide panorama is cut into columns, not into thinner panoramas); a
node whose longer side already fits the model's native input does not split (zooming further would only
upsample), and depth is capped.

Integer maths only: children tile their parent exactly, with no gap and no overlap, for any size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]

__all__ = [
    "Box",
    "TreeNode",
    "best_window",
    "box_area",
    "box_union",
    "children",
    "clamp_box",
    "expand_box",
    "grid_cells",
]


def box_area(box: Box) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])


def children(box: Box) -> list[Box]:
    """The four children of a node: strips when the aspect ratio is 2 or more, else quadrants.

    A side too small to split (fewer than 2 pixels along the cut) yields no children.
    """
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w >= 2 * h:
        if w < 4:
            return []
        xs = [x0 + (w * k) // 4 for k in range(5)]
        return [(xs[k], y0, xs[k + 1], y1) for k in range(4)]
    if h >= 2 * w:
        if h < 4:
            return []
        ys = [y0 + (h * k) // 4 for k in range(5)]
        return [(x0, ys[k], x1, ys[k + 1]) for k in range(4)]
    if w < 2 or h < 2:
        return []
    mx, my = x0 + w // 2, y0 + h // 2
    return [(x0, y0, mx, my), (mx, y0, x1, my), (x0, my, mx, y1), (mx, my, x1, y1)]


@dataclass(frozen=True)
class TreeNode:
    """A node of the image tree: its box, its depth (root 0) and its parent's box."""

    box: Box
    depth: int
    parent: Box | None = None

    def is_leaf(self, native_side: int, max_depth: int) -> bool:
        """True when zooming further would not show more: the node fits the input, or depth is spent."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return self.depth >= max_depth or max(w, h) <= native_side or not children(self.box)

    def expand(self) -> list[TreeNode]:
        return [TreeNode(child, self.depth + 1, self.box) for child in children(self.box)]


def tree_depth(width: int, height: int, native_side: int, max_depth: int) -> int:
    """How deep the tree under a ``width`` x ``height`` image goes (``max_depth`` of the priority rule)."""
    depth, frontier = 0, [TreeNode((0, 0, width, height), 0)]
    while frontier:
        node = frontier.pop()
        depth = max(depth, node.depth)
        if not node.is_leaf(native_side, max_depth):
            frontier.extend(node.expand()[:1])  # every branch of one node has the same shape class
    return depth


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
