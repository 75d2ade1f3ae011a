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

import colorsys
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, get_args

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from foveate.errors import ManifestError

__all__ = [
    "CLUTTER_MAX_CHROMA",
    "COLORS",
    "SHAPES",
    "Box",
    "Category",
    "ColorName",
    "ManifestError",
    "SceneItem",
    "SceneObject",
    "ShapeName",
    "TargetBox",
    "crop_around",
    "generate_scene",
    "image_path",
    "load_manifest",
    "make_benchmark",
    "objects_in_view",
    "random_crop",
    "union_box",
]

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------------
# Vocabulary
# ----------------------------------------------------------------------------------------------------------

ColorName = Literal["red", "green", "blue", "yellow", "purple", "orange"]
ShapeName = Literal["circle", "square", "triangle", "star", "cross"]
Category = Literal["attribute", "relation"]

#: Target colours: saturated, hues at least ~25 degrees apart (orange sits between red and yellow).
COLORS: dict[ColorName, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 185, 45),
    "blue": (35, 75, 230),
    "yellow": (240, 215, 20),
    "purple": (160, 40, 220),
    "orange": (250, 130, 15),
}
SHAPES: tuple[ShapeName, ...] = get_args(ShapeName)
CATEGORIES: tuple[Category, ...] = get_args(Category)

#: No pixel outside the targets has a chroma (max - min channel) above this.
CLUTTER_MAX_CHROMA = 50
#: Each channel of a target's colour is jittered by up to this much (per target), so that a model learns
#: colour categories rather than six exact RGB values; every jittered colour keeps chroma >= 135.
TARGET_COLOR_JITTER = 8

RELATION_OPTIONS = ("left", "right")
ATTRIBUTE_NUM_OPTIONS = 4

Box = tuple[int, int, int, int]

# ----------------------------------------------------------------------------------------------------------
# Manifest models
# ----------------------------------------------------------------------------------------------------------


class SceneObject(BaseModel):
    """One target: its shape, its colour name and its tight box ``[x0, y0, x1, y1]`` (half-open)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shape: ShapeName
    color: ColorName
    box: Box

    @field_validator("box")
    @classmethod
    def _box_not_empty(cls, box: Box) -> Box:
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"box {list(box)} is empty: need x0 < x1 and y0 < y1")
        return box

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def size(self) -> int:
        """The longer side of the box, in pixels."""
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, y1 - y0)


#: Alias: a target is described by its box plus what it looks like.
TargetBox = SceneObject


class SceneItem(BaseModel):
    """One benchmark item: the image's file name (relative to the manifest's folder), the question and its
    targets. ``seed`` and ``index`` regenerate it with :func:`generate_scene`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    image: str
    width: int
    height: int
    category: Category
    question: str
    options: list[str]
    answer: str
    answer_index: int
    targets: list[SceneObject]
    seed: int
    index: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> SceneItem:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"image size {self.width}x{self.height} is not positive")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"options {self.options} repeat an entry")
        if self.answer not in self.options:
            raise ValueError(f"answer {self.answer!r} is not one of the options {self.options}")
        if not 0 <= self.answer_index < len(self.options) or self.options[self.answer_index] != self.answer:
            raise ValueError(
                f"answer_index {self.answer_index} does not point at answer {self.answer!r} in {self.options}"
            )
        for target in self.targets:
            x0, y0, x1, y1 = target.box
            if x0 < 0 or y0 < 0 or x1 > self.width or y1 > self.height:
                raise ValueError(
                    f"target box {list(target.box)} is not inside the {self.width}x{self.height} image"
                )
        if self.category == "attribute":
            if len(self.options) != ATTRIBUTE_NUM_OPTIONS:
                raise ValueError(f"an attribute question needs {ATTRIBUTE_NUM_OPTIONS} options")
            if len(self.targets) != 1:
                raise ValueError("an attribute question has exactly one target")
            if self.answer != self.targets[0].color:
                raise ValueError(
                    f"answer {self.answer!r} is not the target's colour {self.targets[0].color!r}"
                )
        else:
            if sorted(self.options) != sorted(RELATION_OPTIONS):
                raise ValueError(f"a relation question's options are {list(RELATION_OPTIONS)}")
            if len(self.targets) != 2:
                raise ValueError("a relation question has exactly two targets")
        return self


# ----------------------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------------------


def _star_unit_points() -> list[tuple[float, float]]:
    """A regular five-point star, normalised so that its points span exactly [0, 1] in x and y."""
    pts = []
    for k in range(10):
        r = 1.0 if k % 2 == 0 else 0.382
        a = -math.pi / 2 + k * math.pi / 5
        pts.append((r * math.cos(a), r * math.sin(a)))
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return [((x - min(xs)) / (max(xs) - min(xs)), (y - min(ys)) / (max(ys) - min(ys))) for x, y in pts]


_STAR = _star_unit_points()
_CROSS = [(1, 0), (2, 0), (2, 1), (3, 1), (3, 2), (2, 2), (2, 3), (1, 3), (1, 2), (0, 2), (0, 1), (1, 1)]

RGB = tuple[int, int, int]


def _poly(box: Sequence[float], unit: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    return [(x0 + u * (x1 - x0), y0 + v * (y1 - y0)) for u, v in unit]


def _draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    box: Box,
    fill: RGB | None,
    outline: RGB | None = None,
    width: int = 1,
    blob: Sequence[tuple[float, float]] = (),
) -> None:
    """Draw ``shape`` so that it spans the half-open ``box`` (PIL's own coordinates are inclusive)."""
    x0, y0, x1, y1 = box
    ib = (x0, y0, x1 - 1, y1 - 1)
    if shape in ("circle", "ellipse"):
        draw.ellipse(ib, fill=fill, outline=outline, width=width)
    elif shape in ("square", "rect"):
        draw.rectangle(ib, fill=fill, outline=outline, width=width)
    elif shape == "triangle":
        draw.polygon(_poly(ib, [(0, 1), (0.5, 0), (1, 1)]), fill=fill, outline=outline, width=width)
    elif shape == "star":
        draw.polygon(_poly(ib, _STAR), fill=fill, outline=outline, width=width)
    elif shape == "cross":
        if fill is not None and outline is None:
            w, h = x1 - x0, y1 - y0
            tx, ty = max(2, round(w / 3)), max(2, round(h / 3))
            cx, cy = x0 + (w - tx) // 2, y0 + (h - ty) // 2
            draw.rectangle((cx, y0, cx + tx - 1, y1 - 1), fill=fill)
            draw.rectangle((x0, cy, x1 - 1, cy + ty - 1), fill=fill)
        else:
            unit = [(u / 3, v / 3) for u, v in _CROSS]
            draw.polygon(_poly(ib, unit), fill=fill, outline=outline, width=width)
    elif shape == "blob":
        draw.polygon(_poly(ib, blob), fill=fill, outline=outline, width=width)
    else:  # pragma: no cover - callers only pass known shapes
        raise ValueError(f"unknown shape {shape!r}")


def _dull_color(rng: np.random.Generator) -> RGB:
    """A grey or desaturated colour: chroma (max - min channel) at most CLUTTER_MAX_CHROMA."""
    value = float(rng.uniform(0.12, 0.92))
    if rng.random() < 0.4:
        grey = round(value * 255)
        return (grey, grey, grey)
    sat = float(rng.uniform(0.0, 1.0)) * min(0.3, CLUTTER_MAX_CHROMA / 255 / value)
    rf, gf, bf = colorsys.hsv_to_rgb(float(rng.random()), sat, value)
    return (round(rf * 255), round(gf * 255), round(bf * 255))


def _target_color(rng: np.random.Generator, name: ColorName) -> RGB:
    jitter = rng.integers(-TARGET_COLOR_JITTER, TARGET_COLOR_JITTER + 1, size=3)
    r, g, b = (int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[name], jitter, strict=True))
    return (r, g, b)


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Low-frequency luminance noise, a linear gradient and a faint tint, upsampled from a coarse grid."""
    gw, gh = int(rng.integers(3, 9)), int(rng.integers(3, 9))
    base = float(rng.uniform(80, 180))
    luma = rng.normal(0.0, float(rng.uniform(10, 35)), size=(gh, gw))
    angle = float(rng.uniform(0, 2 * math.pi))
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float64)
    ramp = math.cos(angle) * (xx / max(gw - 1, 1) - 0.5) + math.sin(angle) * (yy / max(gh - 1, 1) - 0.5)
    luma += ramp * float(rng.uniform(0, 80))
    tint = rng.uniform(-12, 12, size=(gh, gw, 3))
    grid = np.clip(base + luma[..., None] + tint, 0, 255).astype(np.uint8)
    # Bilinear upsampling never overshoots, so the background's chroma stays at most max(|tint| spread) < 25.
    return Image.fromarray(grid, "RGB").resize((width, height), Image.Resampling.BILINEAR)


def _draw_clutter(rng: np.random.Generator, draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    kinds = (*SHAPES, "ellipse", "rect", "blob")
    # Hatched textures: patches of parallel horizontal or vertical lines.
    for _ in range(int(rng.integers(2, 7))):
        pw, ph = (int(v) for v in rng.integers(80, 420, size=2))
        px, py = int(rng.integers(-pw // 2, width)), int(rng.integers(-ph // 2, height))
        step, lw = int(rng.integers(4, 14)), int(rng.integers(1, 3))
        color = _dull_color(rng)
        if rng.random() < 0.5:
            for y in range(py, py + ph, step):
                draw.line((px, y, px + pw, y), fill=color, width=lw)
        else:
            for x in range(px, px + pw, step):
                draw.line((x, py, x, py + ph), fill=color, width=lw)
    # Distractor shapes, log-uniform sizes 8-300 px: many small ones, a few large ones.
    for _ in range(int(rng.integers(40, 151))):
        kind = kinds[int(rng.integers(len(kinds)))]
        side = float(np.exp(rng.uniform(math.log(8), math.log(300))))
        aspect = 1.0 if kind in ("circle", "square") else float(np.exp(rng.uniform(-0.5, 0.5)))
        w, h = max(3, round(side * aspect)), max(3, round(side / aspect))
        x0, y0 = int(rng.integers(-w // 2, width - w // 2)), int(rng.integers(-h // 2, height - h // 2))
        blob: list[tuple[float, float]] = []
        if kind == "blob":
            n = int(rng.integers(5, 9))
            angles = np.sort(rng.uniform(0, 2 * math.pi, size=n))
            radii = rng.uniform(0.5, 1.0, size=n)
            blob = [
                (0.5 + 0.5 * r * math.cos(a), 0.5 + 0.5 * r * math.sin(a))
                for a, r in zip(angles, radii, strict=True)
            ]
        if rng.random() < 0.7:
            _draw_shape(draw, kind, (x0, y0, x0 + w, y0 + h), fill=_dull_color(rng), blob=blob)
        else:
            lw = int(rng.integers(1, max(2, min(w, h) // 6) + 1))
            _draw_shape(draw, kind, (x0, y0, x0 + w, y0 + h), None, _dull_color(rng), lw, blob)
    # Free lines.
    for _ in range(int(rng.integers(10, 41))):
        xa, xb = (int(v) for v in rng.integers(0, width, size=2))
        ya, yb = (int(v) for v in rng.integers(0, height, size=2))
        draw.line((xa, ya, xb, yb), fill=_dull_color(rng), width=int(rng.integers(1, 7)))


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
) -> tuple[Image.Image, SceneItem]:
    """Draw scene ``index`` of benchmark ``seed``: an RGB image and its :class:`SceneItem`.

    Width and height are drawn independently in ``size_range`` (inclusive), each target's side
    log-uniformly in ``target_size_range`` (inclusive; small targets are the common case). ``category``
    defaults to ``"attribute"`` for even ``index`` and ``"relation"`` for odd. The item's ``image`` is
    ``"images/{id}.png"`` (where :func:`make_benchmark` writes it).
    """
    lo, hi = _check_range("size_range", size_range, 64)
    tlo, thi = _check_range("target_size_range", target_size_range, 3)
    if category is None:
        category = CATEGORIES[index % 2]
    elif category not in CATEGORIES:
        raise ValueError(f"category must be one of {list(CATEGORIES)}, got {category!r}")
    rng = np.random.default_rng([seed, index])
    width, height = int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))

    img = _background(rng, width, height)
    draw = ImageDraw.Draw(img)
    _draw_clutter(rng, draw, width, height)

    color_names: list[ColorName] = list(COLORS)
    n_targets = 1 if category == "attribute" else 2
    picked_colors = [color_names[int(i)] for i in rng.permutation(len(color_names))[:n_targets]]
    picked_shapes = [SHAPES[int(i)] for i in rng.permutation(len(SHAPES))[:n_targets]]
    # Log-uniform sizes: small targets (which vanish in a 128 px whole-image view) are the common case.
    log_sizes = rng.uniform(math.log(tlo), math.log(thi + 1), size=n_targets)
    sizes = [min(thi, int(math.exp(v))) for v in log_sizes]
    boxes = _place_targets(rng, sizes, width, height, min_dx=2 * max(sizes) if n_targets > 1 else 0)
    targets = []
    for shape, color, box in zip(picked_shapes, picked_colors, boxes, strict=True):
        _draw_shape(draw, shape, box, fill=_target_color(rng, color))
        targets.append(SceneObject(shape=shape, color=color, box=box))

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

    # Faint sensor-like noise: one luminance offset per pixel, added to all channels (chroma unchanged).
    arr = np.asarray(img, dtype=np.int16)
    noise = rng.integers(-5, 6, size=(height, width, 1), dtype=np.int16)
    img = Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8), "RGB")

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
    )
    return img, item


# ----------------------------------------------------------------------------------------------------------
# Benchmark folders
# ----------------------------------------------------------------------------------------------------------

MANIFEST_NAME = "manifest.jsonl"


def make_benchmark(out_dir: Path, n: int, seed: int, **kwargs: object) -> list[SceneItem]:
    """Write ``n`` scenes to ``out_dir/images/{id}.png`` and ``out_dir/manifest.jsonl`` (one item per line).

    ``kwargs`` go to :func:`generate_scene`. Categories alternate by index (even: attribute, odd: relation)
    unless ``category`` is given. The manifest is written last, atomically.
    """
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    items = []
    for index in range(n):
        img, item = generate_scene(seed, index, **kwargs)  # type: ignore[arg-type]
        img.save(out_dir / item.image, format="PNG", compress_level=1)
        items.append(item)
        logger.debug("wrote %s (%dx%d, %s)", item.image, item.width, item.height, item.category)
    manifest = out_dir / MANIFEST_NAME
    tmp = manifest.with_name(manifest.name + ".tmp")
    tmp.write_text("".join(item.model_dump_json() + "\n" for item in items), encoding="utf-8")
    os.replace(tmp, manifest)
    logger.info("wrote %d scenes (seed %d) to %s", n, seed, out_dir)
    return items


def load_manifest(path_or_dir: str | Path) -> list[SceneItem]:
    """Read and validate a manifest (the ``.jsonl`` file, or the folder holding ``manifest.jsonl``).

    Blank lines are skipped. A bad line raises :class:`ManifestError` naming the file and the line number.
    """
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read scene manifest {path}: {exc}") from exc
    items = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(SceneItem.model_validate_json(line))
        except ValidationError as exc:
            errors = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<item>'}: {e['msg']}" for e in exc.errors()
            )
            raise ManifestError(f"{path}, line {lineno}: not a valid scene item: {errors}") from None
    return items


def image_path(item: SceneItem, root: str | Path) -> Path:
    """Where ``item``'s image lies, given the benchmark folder (or its manifest file)."""
    root = Path(root)
    if root.suffix == ".jsonl":
        root = root.parent
    return root / item.image


# ----------------------------------------------------------------------------------------------------------
# Views for training and zoom search
# ----------------------------------------------------------------------------------------------------------


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
