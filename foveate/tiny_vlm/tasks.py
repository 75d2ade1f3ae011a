"""What the embedded tiny VLM is asked about a view, and the labels that follow from its geometry.

The prompts are ZoomEye's probes, adapted to the synthetic scenes (``foveate.synthetic.scenes``):

- existence: is the object *clearly visible* in this view?
- latent: could it be found by zooming in (is it in this view at all, however small)?
- answerable: can the question be answered from this view (are all its objects clearly visible)?
- the benchmark questions themselves (attribute: a colour; relation: left / right).

In the harder world (``foveate.synthetic.HARD``) distractors count too: "is there a red circle?" is Yes
when a red circle distractor is clearly visible, a bare "star" is any star, and the absent objects asked
about are mostly confusers of the target (its colour on an absent shape, its shape in an absent colour).
In the plain world every label, and every random draw, is what it always was.

The views, and what "clearly visible" in one means, are ``foveate.tiny_vlm.views``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from foveate.synthetic import (
    COLORS,
    DISTRACTOR_COLORS,
    SHAPES,
    Distractor,
    SceneItem,
    SceneObject,
)
from foveate.tiny_vlm.views import (
    VISIBLE_PIXELS,
    Box,
    NodeViews,
    findable,
    render_view,
    sample_views,
    visible,
)

EXISTENCE = "Is there a {obj} in the image? Answer Yes or No."
LATENT = "Could the {obj} be found by zooming in? Answer Yes or No."
ANSWERABLE = "Question: {question} Could you answer the question from this view? Answer Yes or No."
SIDE = "Is the {obj} on the left or on the right of this view?"
RELATION = "Is the {a} to the left or to the right of the {b}?"
SHAPE_OF = "What is the shape of the {color} object?"
#: How a question's options join it in the answerability probe, when training asks it so (``probe_options``);
#: a model trained so takes it as its family's ``ZoomPrompts.answering_options``.
OPTIONS_LINE = "{q} Options: {options}."
#: How an option names a bare cue ("red" and "square": "red square"), as the cues of the probes it was trained
#: on are named: a model trained so can take it as its family's ``ZoomPrompts.option_cue``.
OPTION_CUE = "{option} {o}"

ANSWER_WORDS: tuple[str, ...] = ("Yes", "No", "left", "right", *COLORS, *SHAPES)
PROMPT_WORDS: tuple[str, ...] = tuple(
    sorted(set(" ".join([EXISTENCE, LATENT, ANSWERABLE, "What is the color of the to or"]).split()))
)


@dataclass(frozen=True)
class Example:
    """One training / evaluation example: a view of a scene, a question and its one-word answer."""

    image: Image.Image
    question: str
    answer: str
    kind: str  # "existence" | "latent" | "answerable" | "attribute" | "relation" | "side" | "shape"
    patch_colors: np.ndarray | None = None  # (grid, grid) colour ids of clearly visible targets, 0 = none
    color_x: np.ndarray | None = (
        None  # (len(COLORS),) centre x in [0, 1] of the visible target per colour, NaN = none
    )
    focus: np.ndarray | None = None  # (grid, grid) patches holding the objects the question names, or None
    patch_shapes: np.ndarray | None = None  # (grid, grid) shape ids of clearly visible objects, 0 = none
    world: str = "plain"  # the scene's world (foveate.synthetic.World.name)


def object_name(obj: SceneObject) -> str:
    return f"{obj.color} {obj.shape}"


def scene_objects(item: SceneItem) -> list[SceneObject | Distractor]:
    """Everything a probe can be about: the targets, and the distractors painted in the vocabulary's
    colours and shapes (a pink star is nothing a probe names, but it is still a star)."""
    return [*item.targets, *(d for d in item.distractors if d.shape in SHAPES)]


def _matches(obj: SceneObject | Distractor, name: str) -> bool:
    """Whether ``obj`` answers to ``name``: "red star" (colour and shape) or a bare "star" (any star)."""
    color, _, shape = name.rpartition(" ")
    return obj.shape == shape and (not color or obj.color == color)


def answerable(item: SceneItem, view: Box, image_size: int, hard_pixels: float = VISIBLE_PIXELS) -> bool:
    """Every target visible; in the harder world (``item.distractors``) at least ``hard_pixels`` wide."""
    pixels = hard_pixels if item.distractors else VISIBLE_PIXELS
    return all(visible(t, view, image_size, pixels) for t in item.targets)


def _other_object(rng: np.random.Generator, exclude_colors: Sequence[str]) -> str:
    colors = [c for c in COLORS if c not in exclude_colors]
    return f"{colors[int(rng.integers(len(colors)))]} {SHAPES[int(rng.integers(len(SHAPES)))]}"


def _other_shape(rng: np.random.Generator, exclude_shapes: Sequence[str]) -> str:
    shapes = [s for s in SHAPES if s not in exclude_shapes]
    return shapes[int(rng.integers(len(shapes)))]


def _absent_confuser(
    rng: np.random.Generator, target: SceneObject, objects: Sequence[SceneObject | Distractor], bare: bool
) -> str:
    """A name nothing in the scene answers to, mostly one that differs from the target in colour *or* in
    shape alone (the harder world's hard negatives: "red circle" beside a red star)."""
    taken = {(o.color, o.shape) for o in objects}
    shapes_here = {o.shape for o in objects}
    if bare:
        free = [s for s in SHAPES if s not in shapes_here]
        if free:
            return free[int(rng.integers(len(free)))]
    roll = rng.random()
    if roll < 0.4:
        pool = [f"{target.color} {s}" for s in SHAPES if (target.color, s) not in taken]
    elif roll < 0.8:
        pool = [f"{c} {target.shape}" for c in COLORS if (c, target.shape) not in taken]
    else:
        pool = []
    if not pool:
        pool = [f"{c} {s}" for c in COLORS for s in SHAPES if (c, s) not in taken]
    return pool[int(rng.integers(len(pool)))]


@dataclass(frozen=True)
class Question:
    """A question about one view and its one-word answer.

    ``about``: the targets in the view that the question names (all of them for the answering and
    benchmark questions), whose patches the answer token is trained to attend to
    (``foveate.tiny_vlm.train.focus_loss``). Supervising only the search probes' attention left the
    model unable to tell left from right (relation 0.53 held-out after 4 epochs); supervising all of
    them taught side questions in 3 epochs.
    """

    kind: str
    text: str
    answer: str
    about: tuple[SceneObject, ...] = ()


def questions_for_view(
    item: SceneItem,
    view: Box,
    rng: np.random.Generator,
    image_size: int,
    paired: frozenset[str] = frozenset(),
    shapes: bool = False,
    probe_options: bool = False,
    hard_answer_pixels: float = VISIBLE_PIXELS,
) -> list[Question]:
    """Questions with labels that follow from the view's geometry.

    Kinds in ``paired`` ask about the target *and* about an absent object (otherwise one of the two, at
    random): the sampler pairs existence on target crops and latent on image-tree nodes, where those probes
    decide a zoom search. ``shapes``: also ask the shape of the clearly visible target's colour, when no
    other visible object has that colour (the answer must come from the shape *at* that colour).
    ``probe_options``: the answerability probe asks the question with its options (``OPTIONS_LINE``), so
    that a view showing the question's shape only in a colour no option offers can say No.
    ``hard_answer_pixels``: in the harder world, the answerability probe says Yes only from this many input
    pixels (a search that stops at 6 px misread the targets it found; fixture-notes.md, session 15).
    """
    out: list[Question] = []
    target = item.targets[int(rng.integers(len(item.targets)))]
    scene_colors = [t.color for t in item.targets]
    # Search cues are named as in the questions: "green star", or just "star" for an attribute question
    # (whose colour is the unknown); a bare shape means the coloured target of that shape.
    bare = rng.random() < 0.35
    name = target.shape if bare else object_name(target)
    scene_shapes = [t.shape for t in item.targets]
    here = (target,) if findable(target, view) else ()
    hard = bool(item.distractors)
    objects = scene_objects(item)

    def absent() -> str:
        if hard:
            return _absent_confuser(rng, target, objects, bare)
        return _other_shape(rng, scene_shapes) if bare else _other_object(rng, scene_colors)

    def seen(rule: Callable[[SceneObject | Distractor], bool]) -> bool:
        """Whether anything answering to the cue's name passes ``rule`` (in the plain world: the target)."""
        return any(rule(o) for o in objects if _matches(o, name)) if hard else rule(target)

    # existence: the cue (Yes only when clearly visible) or an absent object (No)
    ask_target = "existence" in paired or rng.random() < 0.5
    if ask_target:
        clearly = seen(lambda o: visible(o, view, image_size))
        out.append(Question("existence", EXISTENCE.format(obj=name), _yn(clearly), here))
    if "existence" in paired or not ask_target:
        out.append(Question("existence", EXISTENCE.format(obj=absent()), "No"))
    # latent: findable cues say Yes however small; absent objects say No
    ask_target = "latent" in paired or rng.random() < 0.6
    if ask_target:
        out.append(Question("latent", LATENT.format(obj=name), _yn(seen(lambda o: findable(o, view))), here))
    if "latent" in paired or not ask_target:
        out.append(Question("latent", LATENT.format(obj=absent()), "No"))
    in_view = tuple(t for t in item.targets if findable(t, view))
    can = answerable(item, view, image_size, hard_answer_pixels)
    asked = (
        OPTIONS_LINE.format(q=item.question, options=", ".join(item.options))
        if probe_options
        else item.question
    )
    out.append(Question("answerable", ANSWERABLE.format(question=asked), _yn(can), in_view))
    if can:
        out.append(Question(item.category, item.question, item.answer, in_view))
        if item.category == "relation":
            # the same pair asked the other way round: the answer flips, so word order must be read
            a, b = item.targets
            flipped = "right" if item.answer == "left" else "left"
            out.append(
                Question("relation", RELATION.format(a=object_name(b), b=object_name(a)), flipped, in_view)
            )
    # side: where a clearly visible target sits in the view (grounds left / right in positions)
    if visible(target, view, image_size):
        middle = (view[0] + view[2]) / 2
        offset = (target.center[0] - middle) / (view[2] - view[0])
        if abs(offset) > 0.08:
            side = "left" if offset < 0 else "right"
            out.append(Question("side", SIDE.format(obj=object_name(target)), side, (target,)))
    if shapes and visible(target, view, image_size):
        alike = [o for o in objects if o.color == target.color and visible(o, view, image_size)]
        if len(alike) == 1:
            out.append(Question("shape", SHAPE_OF.format(color=target.color), target.shape, (target,)))
    return out


def _yn(flag: bool) -> str:
    return "Yes" if flag else "No"


COLOR_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(COLORS)}
#: The dense colour probe's classes: the option colours, then the harder world's distractor colours (a pink
#: star must not look "red" or "purple" to the tower, nor "nothing").
PATCH_COLOR_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate([*COLORS, *DISTRACTOR_COLORS])}
SHAPE_IDS: dict[str, int] = {name: i + 1 for i, name in enumerate(SHAPES)}


def _patch_map(
    item: SceneItem, view: Box, image_size: int, grid: int, label: Callable[[SceneObject | Distractor], int]
) -> np.ndarray:
    """Input patches covered by a clearly visible object (targets, and in the harder world distractors),
    each labelled by ``label``."""
    labels = np.zeros((grid, grid), dtype=np.int64)
    sx = image_size / (view[2] - view[0])
    sy = image_size / (view[3] - view[1])
    cell = image_size / grid
    for obj in scene_objects(item):
        if not visible(obj, view, image_size) or not label(obj):
            continue
        x0 = (obj.box[0] - view[0]) * sx / cell
        x1 = (obj.box[2] - view[0]) * sx / cell
        y0 = (obj.box[1] - view[1]) * sy / cell
        y1 = (obj.box[3] - view[1]) * sy / cell
        c0, c1 = max(0, int(np.floor(x0))), min(grid, int(np.ceil(x1)))
        r0, r1 = max(0, int(np.floor(y0))), min(grid, int(np.ceil(y1)))
        labels[r0:r1, c0:c1] = label(obj)
    return labels


def patch_color_map(item: SceneItem, view: Box, image_size: int, grid: int) -> np.ndarray:
    """Which input patches show a clearly visible object, and its colour (dense supervision for training)."""
    return _patch_map(item, view, image_size, grid, lambda o: PATCH_COLOR_IDS[o.color])


def patch_shape_map(item: SceneItem, view: Box, image_size: int, grid: int) -> np.ndarray:
    """Which input patches show a clearly visible object, and its shape: the colour map's counterpart, for a
    world where colour alone no longer tells a target from a distractor."""
    return _patch_map(item, view, image_size, grid, lambda o: SHAPE_IDS.get(o.shape, 0))


def color_positions(item: SceneItem, view: Box, image_size: int) -> np.ndarray:
    """Horizontal centre (0 = left, 1 = right edge of the view) of each clearly visible target, by colour.

    Training supervision for where things are: without it a tiny vision tower learns *what* is in a view
    long before it learns *where* (its position embeddings start a hundred times smaller than its pixels).
    """
    xs = np.full(len(COLORS), np.nan, dtype=np.float32)
    for target in item.targets:
        if visible(target, view, image_size):
            xs[COLOR_IDS[target.color] - 1] = (target.center[0] - view[0]) / (view[2] - view[0])
    for d in item.distractors:  # a colour shown twice has no one position: no supervision for it
        if d.color in COLOR_IDS and visible(d, view, image_size):
            xs[COLOR_IDS[d.color] - 1] = np.nan
    return xs


def focus_mask(objects: Sequence[SceneObject], view: Box, grid: int) -> np.ndarray | None:
    """The input patches the objects cover in the view (at least the patch of each centre), or None.

    Training supervision for where the language model looks: the answer token's attention should land on
    these patches, as a real VLM's does on the object a question names (what ViCrop's rel-att reads).
    """
    if not objects:
        return None
    mask = np.zeros((grid, grid), dtype=bool)
    width, height = view[2] - view[0], view[3] - view[1]
    for obj in objects:
        x0 = int(np.floor((obj.box[0] - view[0]) / width * grid))
        x1 = int(np.ceil((obj.box[2] - view[0]) / width * grid))
        y0 = int(np.floor((obj.box[1] - view[1]) / height * grid))
        y1 = int(np.ceil((obj.box[3] - view[1]) / height * grid))
        mask[max(0, y0) : min(grid, y1), max(0, x0) : min(grid, x1)] = True
        cx = min(grid - 1, max(0, int((obj.center[0] - view[0]) / width * grid)))
        cy = min(grid - 1, max(0, int((obj.center[1] - view[1]) / height * grid)))
        mask[cy, cx] = True
    return mask


def examples_for_scene(
    image: Image.Image,
    item: SceneItem,
    rng: np.random.Generator,
    image_size: int,
    grid: int = 8,
    *,
    paired: bool = False,
    context: tuple[float, float] = (1.5, 6.0),
    shape_questions: bool = False,
    nodes: NodeViews | None = None,
    probe_options: bool = False,
    hard_answer_pixels: float = VISIBLE_PIXELS,
) -> list[Example]:
    """Examples for the views of :func:`sample_views`: the whole image, ``nodes``' tree nodes, four crops.

    ``paired``: tree nodes ask the latent probe about the target *and* an absent object, crops ask both
    existence probes (otherwise one of each at random). ``context``: see :func:`sample_views`.
    ``probe_options``, ``hard_answer_pixels``: see :func:`questions_for_view`.
    """
    nodes = nodes or NodeViews()
    examples = []
    for index, view in enumerate(sample_views(image, item, rng, image_size, context, nodes)):
        shown = render_view(image, view, image_size)
        colors = patch_color_map(item, view, image_size, grid)
        shapes = patch_shape_map(item, view, image_size, grid)
        xs = color_positions(item, view, image_size)
        node = 1 <= index <= nodes.count or index > nodes.count + 4  # tree nodes, confuser nodes last
        kinds = frozenset(
            ({"latent", "existence"} if nodes.existence else {"latent"})
            if node
            else {"existence"}
            if index > nodes.count
            else ()
        )
        for q in questions_for_view(
            item,
            view,
            rng,
            image_size,
            kinds if paired else frozenset(),
            shape_questions,
            probe_options,
            hard_answer_pixels,
        ):
            focus = focus_mask(q.about, view, grid)
            examples.append(
                Example(shown, q.text, q.answer, q.kind, colors, xs, focus, shapes, item.world.name)
            )
    return examples
