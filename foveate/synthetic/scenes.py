"""Seeded synthetic high-resolution scenes for a V*-Bench-like benchmark of small-target questions.

Why this module exists: foveate's zoom search is meant for questions about *small* things in *large* images
(V*-Bench: "what is the colour of the cup?" in a 2000 px photo where the cup is 30 px wide). Real benchmark
images are not shippable in tests, so this module draws look-alikes: a 1536-2048 px cluttered canvas with one
or two tiny coloured targets, plus a multiple-choice question about them. The scenes serve two purposes:

* **training** a tiny VLM (input about 128 px) that sees the big clutter in a whole-image view but cannot see
  a 10-60 px target once the image is shrunk 12-16x, while it *can* see it in a crop around the target
  (:func:`crop_around`, :func:`random_crop`, :func:`objects_in_view` build such views and their labels);
* **benchmarking** zoom search: the answer is only recoverable by looking closely at the right place.

The learnability contract (keep it when editing): the targets are the **only strongly saturated objects**
in a scene. They are painted in one of the :data:`COLORS` (each with chroma ``max(rgb) - min(rgb)`` of at
least about 140, slightly jittered per target), while everything else -- the background (low-frequency
noise and a gradient), the 40-150 distractor shapes (same shape vocabulary as the targets, plus ellipses,
rectangles and blobs, 8-300 px), the lines and the hatched textures -- is grey or desaturated (chroma at
most :data:`CLUTTER_MAX_CHROMA`). So "the star" in a question means "the coloured star": a tiny model can
key on colour to find targets in a crop, and the clutter still contains grey shapes of every kind and size.
A final faint luminance noise (the same offset on all three channels) is added over the whole picture;
it does not change any pixel's chroma.

Questions follow V*-Bench's two categories:

* ``attribute`` (one target): ``"What is the color of the {shape}?"``, four colour options, shuffled.
* ``relation`` (two targets of different colours *and* shapes, centres at least twice the larger target
  size apart horizontally): ``"Is the {color1} {shape1} to the left or to the right of the {color2}
  {shape2}?"``, options ``["left", "right"]``.

Everything is a pure function of ``(seed, index)``: :func:`generate_scene` uses
``numpy.random.default_rng([seed, index])``, so an item does not depend on how many items a benchmark has,
and the same pair gives byte-identical PNGs. Boxes are ``[x0, y0, x1, y1]`` in image pixels, half-open like
``PIL.Image.crop`` (the target covers columns ``x0 .. x1 - 1``); a target's box is tight around its drawn
pixels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from foveate.synthetic.distractors import DISTRACTOR_RGB, choose_distractors
from foveate.synthetic.drawing import (
    draw_clutter,
    draw_shape,
    make_background,
    photo_background,
    target_color,
    texture_background,
)
from foveate.synthetic.items import (
    ATTRIBUTE_NUM_OPTIONS,
    CATEGORIES,
    COLORS,
    PLAIN,
    RELATION_OPTIONS,
    SHAPES,
    TARGET_COLOR_JITTER,
    Box,
    Category,
    ColorName,
    SceneItem,
    SceneObject,
    World,
)

__all__ = ["generate_scene"]

logger = logging.getLogger(__name__)


def _place_targets(
    rng: np.random.Generator, sizes: Sequence[int], width: int, height: int, min_dx: int
) -> list[Box]:
    """Square boxes of the given sizes, a margin of max(16, size) from the border, not overlapping (with a
    gap of at least the larger size), and centres at least ``min_dx`` apart horizontally.

    Later targets are placed *near* the first (centres at most ``2.5 * min_dx`` apart horizontally and
    ``min_dx`` vertically), as in V* Bench's relation questions, where both objects fit in one close-up
    view: a crop that shows both at a readable size exists, and the whole image still shows neither.
    """
    for _ in range(1000):
        boxes: list[Box] = []
        for k, s in enumerate(sizes):
            m = max(16, s)
            if width - 2 * m - s < 0 or height - 2 * m - s < 0:
                raise ValueError(f"a {s} px target with a {m} px margin does not fit in {width}x{height}")
            if k == 0:
                x0, y0 = int(rng.integers(m, width - m - s + 1)), int(rng.integers(m, height - m - s + 1))
            else:
                cx, cy = (boxes[0][0] + boxes[0][2]) / 2, (boxes[0][1] + boxes[0][3]) / 2
                dx = float(rng.uniform(min_dx, 2.5 * min_dx)) * (1 if rng.random() < 0.5 else -1)
                dy = float(rng.uniform(-min_dx, min_dx))
                x0, y0 = round(cx + dx - s / 2), round(cy + dy - s / 2)
                if not (m <= x0 <= width - m - s and m <= y0 <= height - m - s):
                    break
            boxes.append((x0, y0, x0 + s, y0 + s))
        if len(boxes) != len(sizes):
            continue
        ok = True
        for i in range(len(boxes)):
            for j in range(i):
                a, b = boxes[i], boxes[j]
                gap = max(a[2] - a[0], b[2] - b[0])
                apart = a[0] >= b[2] + gap or b[0] >= a[2] + gap or a[1] >= b[3] + gap or b[1] >= a[3] + gap
                dx_c = abs((a[0] + a[2]) - (b[0] + b[2])) / 2
                ok = ok and apart and dx_c >= min_dx
        if ok:
            return boxes
    raise ValueError(f"could not place targets of sizes {list(sizes)} in a {width}x{height} image")


def _check_range(name: str, r: tuple[int, int], low: int) -> tuple[int, int]:
    a, b = int(r[0]), int(r[1])
    if not low <= a <= b:
        raise ValueError(f"{name} must be (min, max) with {low} <= min <= max, got {r}")
    return a, b


def generate_scene(
    seed: int,
    index: int,
    *,
    size_range: tuple[int, int] = (1536, 2048),
    target_size_range: tuple[int, int] = (10, 60),
    category: Category | None = None,
    world: World = PLAIN,
) -> tuple[Image.Image, SceneItem]:
    """Draw scene ``index`` of benchmark ``seed``: an RGB image and its :class:`SceneItem`.

    Width and height are drawn independently in ``size_range`` (inclusive), each target's side
    log-uniformly in ``target_size_range`` (inclusive; small targets are the common case). ``category``
    defaults to ``"attribute"`` for even ``index`` and ``"relation"`` for odd. The item's ``image`` is
    ``"images/{id}.png"`` (where :func:`make_benchmark` writes it).

    ``world``: ``PLAIN`` (the default) or ``HARD`` (saturated distractors, photograph or texture
    backgrounds; see :class:`World`). The world's own draws come from a second random stream
    (``[seed, index, 1]``), so the targets, question, options and answer are the same in every world, and
    a plain scene is byte-for-byte what it always was.
    """
    lo, hi = _check_range("size_range", size_range, 64)
    tlo, thi = _check_range("target_size_range", target_size_range, 3)
    if category is None:
        category = CATEGORIES[index % 2]
    elif category not in CATEGORIES:
        raise ValueError(f"category must be one of {list(CATEGORIES)}, got {category!r}")
    rng = np.random.default_rng([seed, index])
    width, height = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))

    img = make_background(rng, width, height)
    draw = ImageDraw.Draw(img)
    draw_clutter(rng, draw, width, height)  # drawn in every world, so the main stream stays the same
    extra = np.random.default_rng([seed, index, 1])
    backdrop = world.background
    if backdrop == "mixed":
        backdrop = "photo" if extra.random() < 0.5 else "texture"
    if backdrop != "clutter":
        make = photo_background if backdrop == "photo" else texture_background
        img = make(extra, width, height)
        draw = ImageDraw.Draw(img)

    color_names: list[ColorName] = list(COLORS)
    n_targets = 1 if category == "attribute" else 2
    picked_colors = [color_names[int(i)] for i in rng.permutation(len(color_names))[:n_targets]]
    picked_shapes = [SHAPES[int(i)] for i in rng.permutation(len(SHAPES))[:n_targets]]
    # Log-uniform sizes: small targets (which vanish in a 128 px whole-image view) are the common case.
    log_sizes = rng.uniform(math.log(tlo), math.log(thi + 1), size=n_targets)
    sizes = [min(thi, int(math.exp(v))) for v in log_sizes]
    boxes = _place_targets(rng, sizes, width, height, min_dx=2 * max(sizes) if n_targets > 1 else 0)
    targets = [
        SceneObject(shape=shape, color=color, box=box)
        for shape, color, box in zip(picked_shapes, picked_colors, boxes, strict=True)
    ]
    fills = [target_color(rng, t.color) for t in targets]

    if category == "attribute":
        (target,) = targets
        others = [c for c in color_names if c != target.color]
        wrong = [others[int(i)] for i in rng.permutation(len(others))[: ATTRIBUTE_NUM_OPTIONS - 1]]
        options: list[str] = [target.color, *wrong]
        options = [options[int(i)] for i in rng.permutation(len(options))]
        question = f"What is the color of the {target.shape}?"
        answer: str = target.color
    else:
        a, b = targets
        options = list(RELATION_OPTIONS)
        question = f"Is the {a.color} {a.shape} to the left or to the right of the {b.color} {b.shape}?"
        answer = "left" if a.center[0] < b.center[0] else "right"

    # the targets go on top: the world's distractors first, then the targets
    distractors = choose_distractors(extra, world, targets, options, width, height, (tlo, thi))
    for d in distractors:
        draw_shape(draw, d.shape, d.box, fill=_jittered(extra, DISTRACTOR_RGB[d.color]))
    for target, fill in zip(targets, fills, strict=True):
        draw_shape(draw, target.shape, target.box, fill=fill)

    # Faint sensor-like noise: one luminance offset per pixel, added to all channels (chroma unchanged).
    # (In place, in int16: an 8000 px scene's temporaries cost seconds and gigabytes otherwise.)
    arr = np.asarray(img, dtype=np.int16)
    noise = rng.integers(-5, 6, size=(height, width, 1), dtype=np.int16)
    np.add(arr, noise, out=arr)
    np.clip(arr, 0, 255, out=arr)
    img = Image.fromarray(arr.astype(np.uint8), "RGB")

    item_id = f"scene-{seed}-{index:05d}"
    item = SceneItem(
        id=item_id,
        image=f"images/{item_id}.png",
        width=width,
        height=height,
        category=category,
        question=question,
        options=options,
        answer=answer,
        answer_index=options.index(answer),
        targets=targets,
        seed=seed,
        index=index,
        world=world,
        distractors=distractors,
    )
    return img, item


def _jittered(rng: np.random.Generator, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """A distractor's colour, jittered as much as a target's."""
    jitter = rng.integers(-TARGET_COLOR_JITTER, TARGET_COLOR_JITTER + 1, size=3)
    r, g, b = (int(np.clip(c + j, 0, 255)) for c, j in zip(rgb, jitter, strict=True))
    return (r, g, b)
