"""The image tree that zoom search walks.

ZoomEye's tree: the root is the whole image; a node splits into 2x2 quadrants, or into four strips when one
side is at least twice the other (so a wide panorama is cut into columns, not into thinner panoramas); a
node whose longer side already fits the model's native input does not split (zooming further would only
upsample), and depth is capped.

Integer maths only: children tile their parent exactly, with no gap and no overlap, for any size.
"""

from __future__ import annotations

from dataclasses import dataclass

from foveate.imaging.boxes import Box

__all__ = ["TreeNode", "children", "tree_depth"]


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
