"""Views of a scene around its targets, and which objects a view shows (training and benchmark crops)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from foveate.imaging.grounding import holds_centre
from foveate.synthetic.items import Box, SceneItem, SceneObject

__all__ = ["box_holds", "crop_around", "objects_in_view", "random_crop", "union_box"]


def union_box(item: SceneItem) -> Box:
    """The smallest box enclosing all of ``item``'s targets."""
    if not item.targets:
        raise ValueError(f"scene item {item.id} has no targets")
    boxes = [t.box for t in item.targets]
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _finish_crop(image: Image.Image, crop_box: Box, out_size: int | None) -> tuple[Image.Image, Box]:
    crop = image.crop(crop_box)
    if out_size is not None and crop.size != (out_size, out_size):
        crop = crop.resize((out_size, out_size), Image.Resampling.BICUBIC)
    return crop, crop_box


def crop_around(
    image: Image.Image,
    box: Sequence[int],
    out_size: int | None,
    rng: np.random.Generator,
    *,
    context: float = 4.0,
    min_side: int = 160,
) -> tuple[Image.Image, Box]:
    """A square crop that contains ``box``, placed at random, resized to ``out_size`` (``None``: native).

    Its side is ``max(context * longer side of box, min_side)``, capped by the image's shorter side, and
    never less than the box itself; so a 20 px target in a 160 px crop shown at 128 px is 16 px wide. The
    crop's offset is uniform over all positions that keep the whole box inside it, so the target is not
    always centred. Returns the crop and its box ``(x0, y0, x1, y1)`` in image pixels.
    """
    bx0, by0, bx1, by1 = (int(v) for v in box)
    W, H = image.size
    if not (0 <= bx0 < bx1 <= W and 0 <= by0 < by1 <= H):
        raise ValueError(f"box {list(box)} is not inside the {W}x{H} image")
    longer = max(bx1 - bx0, by1 - by0)
    if longer > min(W, H):
        raise ValueError(f"no square crop of a {W}x{H} image contains the box {list(box)}")
    side = max(min(max(math.ceil(context * longer), min_side), W, H), longer)
    x0 = int(rng.integers(max(0, bx1 - side), min(bx0, W - side) + 1))
    y0 = int(rng.integers(max(0, by1 - side), min(by0, H - side) + 1))
    return _finish_crop(image, (x0, y0, x0 + side, y0 + side), out_size)


def random_crop(
    image: Image.Image, rng: np.random.Generator, side: int, out_size: int | None = None
) -> tuple[Image.Image, Box]:
    """A square crop of ``side`` px (capped by the image's shorter side) at a uniformly random position,
    resized to ``out_size`` if given. Returns the crop and its box in image pixels."""
    W, H = image.size
    side = max(1, min(int(side), W, H))
    x0, y0 = int(rng.integers(0, W - side + 1)), int(rng.integers(0, H - side + 1))
    return _finish_crop(image, (x0, y0, x0 + side, y0 + side), out_size)


def objects_in_view(item: SceneItem, view_box: Sequence[int], min_fraction: float = 0.5) -> list[SceneObject]:
    """The targets of ``item`` with at least ``min_fraction`` of their box's area inside ``view_box``."""
    vx0, vy0, vx1, vy1 = view_box
    inside = []
    for target in item.targets:
        x0, y0, x1, y1 = target.box
        overlap = max(0, min(x1, vx1) - max(x0, vx0)) * max(0, min(y1, vy1) - max(y0, vy0))
        if overlap >= min_fraction * (x1 - x0) * (y1 - y0):
            inside.append(target)
    return inside


def box_holds(box: Sequence[int] | None, obj: SceneObject) -> bool:
    """Whether an answering crop shows ``obj``: its centre lies in ``box`` (``None``, the whole image, holds
    everything). "Right for the wrong reason" is a right answer from a crop that holds no target."""
    crop = None if box is None else (int(box[0]), int(box[1]), int(box[2]), int(box[3]))
    return holds_centre(crop, obj.box)
