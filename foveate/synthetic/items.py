"""What a synthetic scene holds: the colour and shape vocabulary, the world it is drawn in, and the
pydantic models of its objects and of one benchmark item (a line of the manifest)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ATTRIBUTE_NUM_OPTIONS",
    "CATEGORIES",
    "CLUTTER_MAX_CHROMA",
    "COLORS",
    "DISTRACTOR_COLORS",
    "HARD",
    "PLAIN",
    "RELATION_OPTIONS",
    "SHAPES",
    "TARGET_COLOR_JITTER",
    "WORLDS",
    "Box",
    "Category",
    "ColorName",
    "Distractor",
    "SceneItem",
    "SceneObject",
    "ShapeName",
    "TargetBox",
    "World",
    "world_named",
    "worlds_named",
]

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

#: Saturated colours no question ever offers as an option: the harder world paints the targets' shapes in
#: them (and in the target colours an attribute question does not offer), so that a shape alone never
#: identifies a target.
DISTRACTOR_COLORS: dict[str, tuple[int, int, int]] = {
    "pink": (235, 90, 175),
    "cyan": (30, 195, 210),
    "brown": (140, 80, 25),
}

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


class Distractor(BaseModel):
    """A saturated object that is not a target: a target colour on another shape (``same_color``), a target
    shape in a colour the question does not name or offer (``same_shape``), or any other (``other``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shape: str
    color: str
    box: Box
    kind: Literal["same_color", "same_shape", "other"]

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    @property
    def size(self) -> int:
        x0, y0, x1, y1 = self.box
        return max(x1 - x0, y1 - y0)


class World(BaseModel):
    """The world a scene is drawn in, recorded with every item.

    ``plain`` (the default, the world the shipped tiny VLM was first trained in): the targets are the
    only strongly saturated objects, on grey clutter. ``hard``: saturated distractors (the targets' colours
    on other shapes, the targets' shapes in other colours) and a background that is a photograph (those
    bundled inside scikit-image's wheel) or a procedural texture with saturated regions, so that only shape
    *and* colour identify a target.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "plain"
    background: Literal["clutter", "photo", "texture", "mixed"] = "clutter"
    """``clutter``: grey shapes, lines and hatching on a dull gradient; ``photo`` / ``texture``: instead of
    them; ``mixed``: photo or texture, half each."""
    distractors: tuple[int, int] = (0, 0)
    """How many saturated distractors a scene has (inclusive range)."""
    near_targets: tuple[int, int] = (0, 0)
    """How many of them sit beside the targets, inside the close-up a search would answer from."""

    @model_validator(mode="after")
    def _ranges(self) -> World:
        for name, (lo, hi) in (("distractors", self.distractors), ("near_targets", self.near_targets)):
            if not 0 <= lo <= hi:
                raise ValueError(f"{name} must be (min, max) with 0 <= min <= max, got {(lo, hi)}")
        if self.near_targets[1] > self.distractors[0]:
            raise ValueError("near_targets cannot exceed the fewest distractors")
        return self


PLAIN = World()
HARD = World(name="hard", background="mixed", distractors=(8, 20), near_targets=(2, 4))
WORLDS: dict[str, World] = {"plain": PLAIN, "hard": HARD}


def world_named(name: str) -> World:
    """A built-in world by name (``plain``, ``hard``); ``ValueError`` naming the known ones otherwise."""
    try:
        return WORLDS[name]
    except KeyError:
        raise ValueError(f"unknown world {name!r}; known: {', '.join(WORLDS)}") from None


def worlds_named(text: str) -> list[World]:
    """The built-in worlds a comma-separated list names, in order (blanks around names ignored): what
    ``--worlds`` options take. ``ValueError`` naming the problem for an unknown name, an empty list, or a
    world named twice (it would be measured twice and reported as two)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"{text!r} names no world; known: {', '.join(WORLDS)}")
    if len(set(names)) < len(names):
        raise ValueError(f"{text!r} names a world twice")
    return [world_named(name) for name in names]


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
    world: World = PLAIN
    distractors: list[Distractor] = Field(default_factory=list)

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
        named = {(t.color, t.shape) for t in self.targets}
        asked = self.targets[0].shape if self.category == "attribute" else None
        for d in self.distractors:
            if (d.color, d.shape) in named or (d.shape == asked and d.color in self.options):
                raise ValueError(f"distractor {d.color} {d.shape} would make the question ambiguous")
        return self
