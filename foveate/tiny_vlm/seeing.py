"""The seeing phase: the vision tower alone learns each patch's shape and colour on a fresh stream of views.

Why it exists (docs/benchmarks/fixture-notes.md, 2026-12-05 and 2026-12-06): trained on answers, the tiny
VLM answered "is there a red circle?" by colour alone (an absent red square got P(Yes) 0.58, as much as a
present red circle), and its shape questions stayed at chance. A probe of the tower showed why: with a head
on the *mean* of the patch features the tower learned colour within 500 steps and shape not at all in 5000
(held-out 0.25, chance 0.20), on stored images or a fresh stream; with a *dense* head (every patch names
the shape of the object it shows) on a fresh stream it did: per-object shape accuracy rose from 0.21 to 0.52
in 3000 steps (objects of 40 px and up 0.94, 20-39 px 0.73, under 20 px 0.31), starting from the shipped
tower. So this phase gives the tower that dense signal on views drawn afresh every step, before any question
is asked; the phases after it train the language model to read it.

A view is a square canvas of 1.5 to 4 times the model's input (as a zoom view is a downscaled part of a large
scene), on one of the backgrounds of both worlds (the plain world's grey clutter, a photograph, a saturated
texture), with 1 to 5 saturated objects in the target and distractor colours. Half the views hold two objects
of one colour and different shapes (and half two of one shape and different colours), which is exactly the
confusion the existence probe must not make. The canvas is then resized to the input as the processor would.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from foveate.synthetic.drawing import (
    draw_clutter,
    draw_shape,
    make_background,
    photo_background,
    texture_background,
)
from foveate.synthetic.items import COLORS, DISTRACTOR_COLORS, SHAPES, TARGET_COLOR_JITTER
from foveate.tiny_vlm.losses import warmup_cosine
from foveate.tiny_vlm.tasks import PATCH_COLOR_IDS, SHAPE_IDS

__all__ = ["SeenView", "draw_view", "draw_views", "see"]

logger = logging.getLogger(__name__)

_RGB: dict[str, tuple[int, int, int]] = {**dict(COLORS.items()), **DISTRACTOR_COLORS}
#: sizes of the objects as the model sees them (input pixels), log-uniform: the fixture's targets are 10-60 px
#: in scenes whose crops are shown at the input's size or smaller
_SIZE_RANGE = (8.0, 64.0)
#: a patch is labelled with an object when the object covers this share of it, or holds its centre
_COVER = 0.25
_BACKGROUND_WEIGHT = 0.2  # most patches show no object; without a lower weight the head says "none" always


@dataclass
class SeenView:
    """One drawn view: its pixels at the model's input size and the shape / colour class of every patch."""

    image: Image.Image
    shapes: np.ndarray  # (grid, grid) SHAPE_IDS, 0 = no object
    colors: np.ndarray  # (grid, grid) PATCH_COLOR_IDS, 0 = no object
    objects: list[tuple[tuple[float, float, float, float], int, int]]  # input-pixel box, shape id, colour id


def _background(rng: np.random.Generator, side: int) -> Image.Image:
    kind = rng.random()
    if kind < 1 / 3:
        image = make_background(rng, side, side)
        draw_clutter(rng, ImageDraw.Draw(image), side, side)
        return image
    if kind < 2 / 3:
        return photo_background(rng, side, side)
    return texture_background(rng, side, side)


def _pick(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """``n`` (shape, colour) pairs, all different; with a chance, two sharing a colour or a shape."""
    colors, shapes = list(_RGB), list(SHAPES)
    pairs: list[tuple[str, str]] = []
    while len(pairs) < n:
        if pairs and rng.random() < 0.5:
            shape, color = pairs[int(rng.integers(len(pairs)))]
            if rng.random() < 0.5:  # same colour, another shape
                shape = shapes[int(rng.integers(len(shapes)))]
            else:  # same shape, another colour
                color = colors[int(rng.integers(len(colors)))]
        else:
            shape, color = shapes[int(rng.integers(len(shapes)))], colors[int(rng.integers(len(colors)))]
        if (shape, color) not in pairs:
            pairs.append((shape, color))
    return pairs


def draw_view(rng: np.random.Generator, image_size: int, grid: int) -> SeenView:
    """One view, deterministic for the generator's state."""
    scale = float(rng.uniform(1.5, 4.0))
    side = round(image_size * scale)
    image = _background(rng, side)
    draw = ImageDraw.Draw(image)
    taken: list[tuple[int, int, int, int]] = []
    objects: list[tuple[tuple[float, float, float, float], int, int]] = []
    for shape, color in _pick(rng, int(rng.integers(1, 6))):
        seen = float(np.exp(rng.uniform(math.log(_SIZE_RANGE[0]), math.log(_SIZE_RANGE[1]))))
        size = max(4, round(seen * scale))
        for _ in range(20):  # apart from every earlier object by a gap, or dropped
            x0, y0 = (int(v) for v in rng.integers(0, side - size, size=2))
            box = (x0, y0, x0 + size, y0 + size)
            gap = round(3 * scale)
            if all(
                box[2] + gap <= t[0] or t[2] + gap <= box[0] or box[3] + gap <= t[1] or t[3] + gap <= box[1]
                for t in taken
            ):
                break
        else:
            continue
        taken.append(box)
        jitter = rng.integers(-TARGET_COLOR_JITTER, TARGET_COLOR_JITTER + 1, size=3)
        r, g, b = (int(np.clip(c + j, 0, 255)) for c, j in zip(_RGB[color], jitter, strict=True))
        draw_shape(draw, shape, box, fill=(r, g, b))
        seen_box = (box[0] / scale, box[1] / scale, box[2] / scale, box[3] / scale)
        objects.append((seen_box, SHAPE_IDS[shape], PATCH_COLOR_IDS[color]))
    image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    shapes = np.zeros((grid, grid), dtype=np.int64)
    colors = np.zeros((grid, grid), dtype=np.int64)
    cell = image_size / grid
    for (left, top, right, bottom), shape_id, color_id in objects:
        cx, cy = (left + right) / 2, (top + bottom) / 2
        for row in range(grid):
            for col in range(grid):
                ox = max(0.0, min(right, (col + 1) * cell) - max(left, col * cell))
                oy = max(0.0, min(bottom, (row + 1) * cell) - max(top, row * cell))
                centre = col * cell <= cx < (col + 1) * cell and row * cell <= cy < (row + 1) * cell
                if centre or ox * oy >= _COVER * cell * cell:
                    shapes[row, col], colors[row, col] = shape_id, color_id
    return SeenView(image, shapes, colors, objects)


def draw_views(rng: np.random.Generator, n: int, image_size: int, grid: int) -> list[SeenView]:
    return [draw_view(rng, image_size, grid) for _ in range(n)]


def _pixels(processor: Any, views: list[SeenView]) -> torch.Tensor:
    return processor.image_processor([v.image for v in views], return_tensors="pt")["pixel_values"]


def _patch_features(tower: Any, pixels: torch.Tensor) -> torch.Tensor:
    # the layer LLaVA hands to its projector (vision_feature_layer -2), without the class token
    return tower(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]


@torch.inference_mode()
def _accuracy(
    tower: Any, heads: tuple[torch.nn.Linear, torch.nn.Linear], pixels: torch.Tensor, views: list[SeenView]
) -> dict[str, float]:
    """Per object: the shape (and colour) whose mean logit over the object's labelled patches is highest."""
    tower.eval()
    features = _patch_features(tower, pixels)
    shape_logits, color_logits = heads[0](features)[..., 1:], heads[1](features)[..., 1:]
    hits: dict[str, list[bool]] = defaultdict(list)
    for row, view in enumerate(views):
        flat_shapes = view.shapes.reshape(-1)
        for box, shape_id, color_id in view.objects:
            cells = np.flatnonzero(flat_shapes == shape_id)
            if len(cells) == 0:
                continue
            shape_ok = int(shape_logits[row, cells].mean(0).argmax()) + 1 == shape_id
            hits["colour"].append(int(color_logits[row, cells].mean(0).argmax()) + 1 == color_id)
            hits["shape"].append(shape_ok)
            size = box[2] - box[0]
            hits["shape <20 px" if size < 20 else "shape 20-39 px" if size < 40 else "shape 40+ px"].append(
                shape_ok
            )
    tower.train()
    return {k: float(np.mean(v)) for k, v in sorted(hits.items())}


def see(
    tower: Any,
    processor: Any,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: str = "cpu",
    eval_views: int = 300,
) -> dict[str, float]:
    """Train ``tower`` (a CLIP vision tower, in place) for ``steps`` steps; returns held-out accuracy.

    Each step draws ``batch_size`` new views (nothing is seen twice, so nothing can be memorised: stored
    images were memorised after about 2000 steps in the probe). The linear heads are thrown away after.
    """
    image_size = int(tower.config.image_size)
    grid = image_size // int(tower.config.patch_size)
    hidden = int(tower.config.hidden_size)
    torch.manual_seed(seed)
    heads = (
        torch.nn.Linear(hidden, 1 + len(SHAPE_IDS)).to(device),
        torch.nn.Linear(hidden, 1 + len(PATCH_COLOR_IDS)).to(device),
    )
    params = [*tower.parameters(), *heads[0].parameters(), *heads[1].parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps))
    weight = torch.ones(1 + len(SHAPE_IDS), device=device)
    weight[0] = _BACKGROUND_WEIGHT
    held_out = draw_views(np.random.default_rng([seed, 1]), eval_views, image_size, grid)
    held_pixels = _pixels(processor, held_out).to(device)
    stream = np.random.default_rng([seed, 0])
    tower.train()
    losses: list[float] = []
    for step in range(steps):
        views = draw_views(stream, batch_size, image_size, grid)
        features = _patch_features(tower, _pixels(processor, views).to(device))
        shapes = torch.as_tensor(np.stack([v.shapes for v in views]).reshape(-1), device=device)
        colors = torch.as_tensor(np.stack([v.colors for v in views]).reshape(-1), device=device)
        shape_loss = torch.nn.functional.cross_entropy(
            heads[0](features).reshape(len(shapes), -1), shapes, weight=weight
        )
        color_loss = torch.nn.functional.cross_entropy(heads[1](features).reshape(len(colors), -1), colors)
        loss = shape_loss + 0.5 * color_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 500 == 0:
            logger.info(
                "seeing step %d loss %.3f held-out %s",
                step + 1,
                np.mean(losses[-500:]),
                _accuracy(tower, heads, held_pixels, held_out),
            )
    accuracy = _accuracy(tower, heads, held_pixels, held_out)
    logger.info("seeing: held-out accuracy %s", accuracy)
    return accuracy
