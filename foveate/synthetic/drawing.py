"""Drawing a scene: the shapes, the targets' saturated colours and the clutter's dull ones, the background."""

from __future__ import annotations

import colorsys
import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from foveate.synthetic.items import (
    CLUTTER_MAX_CHROMA,
    COLORS,
    SHAPES,
    TARGET_COLOR_JITTER,
    Box,
    ColorName,
)

__all__ = [
    "PHOTOS",
    "RGB",
    "draw_clutter",
    "draw_shape",
    "dull_color",
    "make_background",
    "photo_background",
    "photo_folder",
    "target_color",
    "texture_background",
]


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


def draw_shape(
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


def dull_color(rng: np.random.Generator) -> RGB:
    """A grey or desaturated colour: chroma (max - min channel) at most CLUTTER_MAX_CHROMA."""
    value = float(rng.uniform(0.12, 0.92))
    if rng.random() < 0.4:
        grey = round(value * 255)
        return (grey, grey, grey)
    sat = float(rng.uniform(0.0, 1.0)) * min(0.3, CLUTTER_MAX_CHROMA / 255 / value)
    rf, gf, bf = colorsys.hsv_to_rgb(float(rng.random()), sat, value)
    return (round(rf * 255), round(gf * 255), round(bf * 255))


def target_color(rng: np.random.Generator, name: ColorName) -> RGB:
    jitter = rng.integers(-TARGET_COLOR_JITTER, TARGET_COLOR_JITTER + 1, size=3)
    r, g, b = (int(np.clip(c + j, 0, 255)) for c, j in zip(COLORS[name], jitter, strict=True))
    return (r, g, b)


def make_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
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


def draw_clutter(rng: np.random.Generator, draw: ImageDraw.ImageDraw, width: int, height: int) -> None:
    kinds = (*SHAPES, "ellipse", "rect", "blob")
    # Hatched textures: patches of parallel horizontal or vertical lines.
    for _ in range(int(rng.integers(2, 7))):
        pw, ph = (int(v) for v in rng.integers(80, 420, size=2))
        px, py = int(rng.integers(-pw // 2, width)), int(rng.integers(-ph // 2, height))
        step, lw = int(rng.integers(4, 14)), int(rng.integers(1, 3))
        color = dull_color(rng)
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
            draw_shape(draw, kind, (x0, y0, x0 + w, y0 + h), fill=dull_color(rng), blob=blob)
        else:
            lw = int(rng.integers(1, max(2, min(w, h) // 6) + 1))
            draw_shape(draw, kind, (x0, y0, x0 + w, y0 + h), None, dull_color(rng), lw, blob)
    # Free lines.
    for _ in range(int(rng.integers(10, 41))):
        xa, xb = (int(v) for v in rng.integers(0, width, size=2))
        ya, yb = (int(v) for v in rng.integers(0, height, size=2))
        draw.line((xa, ya, xb, yb), fill=dull_color(rng), width=int(rng.integers(1, 7)))


# ----------------------------------------------------------------------------------------------------------
# The harder world's backgrounds: photographs and saturated textures, in place of the grey clutter
# ----------------------------------------------------------------------------------------------------------

#: Colour photographs bundled inside scikit-image's wheel (``skimage/data``): read with PIL from the
#: installed package, so nothing is downloaded and skimage itself is never imported.
PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "motorcycle_left.png",
    "retina.jpg",
    "rocket.jpg",
    "color.png",
)


def photo_folder() -> Path:
    """Where the installed scikit-image keeps its bundled photographs; a clear error without it."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the harder world's photo backgrounds are the photographs bundled with scikit-image: "
            "pip install 'foveate[bench]' (or scikit-image)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def photo_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A random part (half to all of it, maybe mirrored) of one bundled photograph, resized to the scene."""
    name = PHOTOS[int(rng.integers(len(PHOTOS)))]
    with Image.open(photo_folder() / name) as opened:
        photo = opened.convert("RGB")
    fraction = float(rng.uniform(0.5, 1.0))
    cw, ch = max(8, round(photo.width * fraction)), max(8, round(photo.height * fraction))
    x0, y0 = int(rng.integers(0, photo.width - cw + 1)), int(rng.integers(0, photo.height - ch + 1))
    part = photo.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        part = part.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return part.resize((width, height), Image.Resampling.BICUBIC)


def texture_background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """Saturated procedural texture: low-frequency coloured noise, a hue gradient, and coloured patches."""
    gw, gh = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    hsv = np.stack(
        [rng.random((gh, gw)), rng.uniform(0.2, 1.0, (gh, gw)), rng.uniform(0.3, 1.0, (gh, gw))], axis=-1
    )
    angle = float(rng.uniform(0, 2 * math.pi))
    yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float64)
    ramp = math.cos(angle) * xx / max(gw - 1, 1) + math.sin(angle) * yy / max(gh - 1, 1)
    hsv[..., 0] = (hsv[..., 0] * float(rng.uniform(0, 0.5)) + ramp * float(rng.uniform(0, 1))) % 1.0
    rgb = np.array([[colorsys.hsv_to_rgb(*px) for px in row] for row in hsv]) * 255
    img = Image.fromarray(rgb.astype(np.uint8), "RGB").resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(5, 25))):  # coloured patches and stripes, 40-600 px
        w, h = (int(v) for v in np.exp(rng.uniform(math.log(40), math.log(600), size=2)))
        x0, y0 = int(rng.integers(-w // 2, width)), int(rng.integers(-h // 2, height))
        r, g, b = colorsys.hsv_to_rgb(
            float(rng.random()), float(rng.uniform(0.3, 1)), float(rng.uniform(0.3, 1))
        )
        fill = (round(r * 255), round(g * 255), round(b * 255))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=fill)
        else:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=fill)
    return img
