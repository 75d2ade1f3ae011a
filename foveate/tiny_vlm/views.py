"""The views the embedded tiny VLM is asked about, and what a view shows clearly.

"Clearly visible" is a size rule: a target counts as visible in a view when its side, once the view is
shrunk to the model's input (``image_size`` pixels), is at least ``VISIBLE_PIXELS``. Whole 2000 px scenes
then show no target clearly (a 60 px target becomes 4 px), while the crops that zoom search reaches do.
Views are the nodes of the same 2x2 image tree that zoom search walks, plus crops around the targets
(``sample_views``); ``foveate.tiny_vlm.tasks`` says what is asked about them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from foveate.synthetic import Distractor, SceneItem, SceneObject, crop_around, union_box

Box = tuple[int, int, int, int]

VISIBLE_PIXELS = 6


def view_scale(view: Box, image_size: int) -> float:
    """Pixels of model input per pixel of scene, for a view squashed to ``image_size`` square."""
    return image_size / max(view[2] - view[0], view[3] - view[1])


def _inside(obj: SceneObject | Distractor, view: Box, fraction: float = 0.5) -> bool:
    x0, y0, x1, y1 = obj.box
    overlap = max(0, min(x1, view[2]) - max(x0, view[0])) * max(0, min(y1, view[3]) - max(y0, view[1]))
    return overlap >= fraction * (x1 - x0) * (y1 - y0)


def visible(
    obj: SceneObject | Distractor, view: Box, image_size: int, pixels: float = VISIBLE_PIXELS
) -> bool:
    """In the view and at least ``pixels`` wide once the view is shown at ``image_size``."""
    return _inside(obj, view) and obj.size * view_scale(view, image_size) >= pixels


def findable(obj: SceneObject | Distractor, view: Box) -> bool:
    """Its centre lies in the view: zooming into this view would reveal it, however small it is now."""
    cx, cy = obj.center
    return view[0] <= cx < view[2] and view[1] <= cy < view[3]


def tree_children(view: Box) -> list[Box]:
    """ZoomEye's split: 2x2 quadrants, or 4 strips when one side is at least twice the other."""
    x0, y0, x1, y1 = view
    w, h = x1 - x0, y1 - y0
    if w >= 2 * h:
        xs = [x0 + (w * k) // 4 for k in range(5)]
        return [(xs[k], y0, xs[k + 1], y1) for k in range(4)]
    if h >= 2 * w:
        ys = [y0 + (h * k) // 4 for k in range(5)]
        return [(x0, ys[k], x1, ys[k + 1]) for k in range(4)]
    mx, my = x0 + w // 2, y0 + h // 2
    return [(x0, y0, mx, my), (mx, y0, x1, my), (x0, my, mx, y1), (mx, my, x1, y1)]


def render_view(image: Image.Image, view: Box, image_size: int) -> Image.Image:
    """The view, squashed to the model's square input (what the processor would do, done once here)."""
    return image.crop(view).resize((image_size, image_size), Image.Resampling.BICUBIC)


@dataclass(frozen=True)
class NodeViews:
    """The image-tree nodes a scene's examples are asked on: the views a zoom search probes."""

    count: int = 3
    """Nodes per scene."""
    toward: float = 0.7
    """The share walked down toward a target (the rest take random children: the target is elsewhere)."""
    min_depth: int = 1
    """The shallowest node; the deepest is 4 levels down (or the first at most the model's input)."""
    existence: bool = False
    """Paired probes also ask existence on these nodes (about the target and an absent object), not latent
    alone: a search's existence probe ranks nodes of up to two native sides, not target crops."""
    confusers: int = 0
    """Harder world: further nodes (depth 2-4) walked toward a distractor of a target's shape (else of its
    colour), where the target mostly is not: the views a search's stop probe fired on wrongly (a purple
    circle for "what colour is the circle?", options red / orange / green / blue; fixture-notes.md, session
    16)."""


def sample_views(
    image: Image.Image,
    item: SceneItem,
    rng: np.random.Generator,
    image_size: int,
    context: tuple[float, float] = (1.5, 6.0),
    nodes: NodeViews = NodeViews(),
) -> Iterator[Box]:
    """The whole image, ``nodes.count`` image-tree nodes (mostly on the path to a target), four target crops.

    A crop's side is ``context`` (drawn uniformly from the range) times the targets' union box, at least
    ``image_size``.
    """
    full: Box = (0, 0, image.width, image.height)
    yield full
    for _ in range(nodes.count):
        depth = int(rng.integers(nodes.min_depth, 5))
        toward = item.targets[int(rng.integers(len(item.targets)))] if rng.random() < nodes.toward else None
        yield _walk_down(full, depth, toward, rng, image_size)
    for _ in range(4):
        scale = float(rng.uniform(*context))
        _, box = crop_around(image, union_box(item), None, rng, context=scale, min_side=image_size)
        yield box
    shapes = {t.shape for t in item.targets}
    colors = {t.color for t in item.targets}
    confusers = [d for d in item.distractors if d.shape in shapes] or [
        d for d in item.distractors if d.color in colors
    ]
    for _ in range(nodes.confusers if confusers else 0):
        confuser = confusers[int(rng.integers(len(confusers)))]
        # from depth 2: ``fast`` ranks no shallower level on scenes of 1000 px and up (``first_level``)
        depth = int(rng.integers(max(2, nodes.min_depth), 5))
        yield _walk_down(full, depth, confuser, rng, image_size)


def _walk_down(
    view: Box,
    depth: int,
    toward: SceneObject | Distractor | None,
    rng: np.random.Generator,
    image_size: int,
) -> Box:
    """``depth`` levels down the image tree from ``view``: into the child holding ``toward``'s centre, else
    a random one; stopping early at a view no larger than the model's input."""
    for _ in range(depth):
        children = tree_children(view)
        on_path = [c for c in children if toward is not None and findable(toward, c)]
        view = on_path[0] if on_path else children[int(rng.integers(len(children)))]
        if max(view[2] - view[0], view[3] - view[1]) <= image_size:
            break
    return view
