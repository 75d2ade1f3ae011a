"""The harder world's saturated distractors: what they look like and where they go.

Three kinds, so that neither colour nor shape alone identifies a target:

- ``same_color``: a target's colour on another of the target shapes (a red circle beside the red star);
- ``same_shape``: a target's shape in a colour the question neither names nor offers (a pink star; for an
  attribute question also a target colour that is not among its options);
- ``other``: any saturated colour on any shape, none a target's own combination.

A few sit beside the targets, inside the close-up a search answers from, the rest anywhere; none overlaps
a target. Drawn with their own random stream, so a scene's targets, question and options are the same in
every world.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from foveate.synthetic.items import COLORS, DISTRACTOR_COLORS, SHAPES, Box, Distractor, SceneObject, World

__all__ = ["DISTRACTOR_RGB", "choose_distractors"]

#: Every colour a distractor may take, by name.
DISTRACTOR_RGB: dict[str, tuple[int, int, int]] = {**dict(COLORS.items()), **DISTRACTOR_COLORS}


def _kinds(
    rng: np.random.Generator, targets: Sequence[SceneObject], options: Sequence[str], n: int
) -> list[tuple[str, str, str]]:
    """``n`` (kind, colour, shape) triples, none a target's combination, none of an attribute question's
    shape in one of its options (which would make the question ambiguous)."""
    named = {(t.color, t.shape) for t in targets}
    attribute_shape = targets[0].shape if len(targets) == 1 else None
    out: list[tuple[str, str, str]] = []
    while len(out) < n:
        target = targets[int(rng.integers(len(targets)))]
        roll = rng.random()
        color: str
        if roll < 0.4:
            kind, color = "same_color", str(target.color)
            shape = str(SHAPES[int(rng.integers(len(SHAPES)))])
        elif roll < 0.75:
            kind, shape = "same_shape", target.shape
            color = str(list(DISTRACTOR_RGB)[int(rng.integers(len(DISTRACTOR_RGB)))])
        else:
            kind = "other"
            color = str(list(DISTRACTOR_RGB)[int(rng.integers(len(DISTRACTOR_RGB)))])
            shape = str(SHAPES[int(rng.integers(len(SHAPES)))])
        if (color, shape) in named or (shape == attribute_shape and color in options):
            continue
        out.append((kind, color, shape))
    return out


def _clear(box: Box, taken: Sequence[Box], gap: int) -> bool:
    return all(
        box[0] >= t[2] + gap or t[0] >= box[2] + gap or box[1] >= t[3] + gap or t[1] >= box[3] + gap
        for t in taken
    )


def choose_distractors(
    rng: np.random.Generator,
    world: World,
    targets: Sequence[SceneObject],
    options: Sequence[str],
    width: int,
    height: int,
    size_range: tuple[int, int],
) -> list[Distractor]:
    """The distractors of one scene: kinds, colours, shapes, and boxes clear of the targets."""
    lo, hi = world.distractors
    n = int(rng.integers(lo, hi + 1))
    near = int(rng.integers(world.near_targets[0], world.near_targets[1] + 1))
    if n == 0:
        return []
    target_boxes = [t.box for t in targets]
    biggest = max(t.size for t in targets)
    ux0, uy0 = min(b[0] for b in target_boxes), min(b[1] for b in target_boxes)
    ux1, uy1 = max(b[2] for b in target_boxes), max(b[3] for b in target_boxes)
    out: list[Distractor] = []
    for k, (kind, color, shape) in enumerate(_kinds(rng, targets, options, n)):
        for _ in range(200):
            side = min(
                size_range[1],
                int(math.exp(rng.uniform(math.log(size_range[0]), math.log(size_range[1] + 1)))),
            )
            if k < near:  # beside the targets: within about three target sizes of their union
                reach = 3 * max(biggest, side)
                x0 = int(rng.integers(ux0 - reach, ux1 + reach - side + 1))
                y0 = int(rng.integers(uy0 - reach, uy1 + reach - side + 1))
            else:
                x0, y0 = (
                    int(rng.integers(0, max(1, width - side))),
                    int(rng.integers(0, max(1, height - side))),
                )
            box = (x0, y0, x0 + side, y0 + side)
            inside = x0 >= 0 and y0 >= 0 and box[2] <= width and box[3] <= height
            if inside and _clear(box, target_boxes, max(biggest, side) // 2 + 2):
                out.append(Distractor(shape=shape, color=color, box=box, kind=kind))  # type: ignore[arg-type]
                break
    return out
