"""What the embedded tiny VLM is asked, and the views it is asked about.

The prompts are ZoomEye's probes, adapted to the synthetic scenes (``foveate.synthetic.scenes``):

- existence: is the object *clearly visible* in this view?
- latent: could it be found by zooming in (is it in this view at all, however small)?
- answerable: can the question be answered from this view (are all its objects clearly visible)?
- the benchmark questions themselves (attribute: a colour; relation: left / right).

In the harder world (``foveate.synthetic.HARD``) distractors count too: "is there a red circle?" is Yes
when a red circle distractor is clearly visible, a bare "star" is any star, and the absent objects asked
about are mostly confusers of the target (its colour on an absent shape, its shape in an absent colour).
In the plain world every label, and every random draw, is what it always was.

"Clearly visible" is a size rule: a target counts as visible in a view when its side, once the view is
shrunk to the model's input (``image_size`` pixels), is at least ``VISIBLE_PIXELS``. Whole 2000 px scenes
then show no target clearly (a 60 px target becomes 4 px), while the crops that zoom search reaches do.
Views are the nodes of the same 2x2 image tree that zoom search walks, plus crops around the targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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
    crop_around,
    union_box,
)

Box = tuple[int, int, int, int]

VISIBLE_PIXELS = 6

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


def answerable(item: SceneItem, view: Box, image_size: int, hard_pixels: float = VISIBLE_PIXELS) -> bool:
    """Every target visible; in the harder world (``item.distractors``) at least ``hard_pixels`` wide."""
    pixels = hard_pixels if item.distractors else VISIBLE_PIXELS
    return all(visible(t, view, image_size, pixels) for t in item.targets)


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
        view = full
        depth = int(rng.integers(nodes.min_depth, 5))
        toward = item.targets[int(rng.integers(len(item.targets)))] if rng.random() < nodes.toward else None
        for _ in range(depth):
            children = tree_children(view)
            on_path = [c for c in children if toward is not None and findable(toward, c)]
            view = on_path[0] if on_path else children[int(rng.integers(len(children)))]
            if max(view[2] - view[0], view[3] - view[1]) <= image_size:
                break
        yield view
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
        toward_d = confusers[int(rng.integers(len(confusers)))]
        view = full
        # from depth 2: ``fast`` ranks no shallower level on scenes of 1000 px and up (``first_level``)
        for _ in range(int(rng.integers(max(2, nodes.min_depth), 5))):
            children = tree_children(view)
            on_path = [c for c in children if findable(toward_d, c)]
            view = on_path[0] if on_path else children[int(rng.integers(len(children)))]
            if max(view[2] - view[0], view[3] - view[1]) <= image_size:
                break
        yield view


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
    nodes: NodeViews = NodeViews(),
    probe_options: bool = False,
    hard_answer_pixels: float = VISIBLE_PIXELS,
) -> list[Example]:
    """Examples for the views of :func:`sample_views`: the whole image, ``nodes``' tree nodes, four crops.

    ``paired``: tree nodes ask the latent probe about the target *and* an absent object, crops ask both
    existence probes (otherwise one of each at random). ``context``: see :func:`sample_views`.
    ``probe_options``, ``hard_answer_pixels``: see :func:`questions_for_view`.
    """
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
