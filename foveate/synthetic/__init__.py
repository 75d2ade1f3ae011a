"""The synthetic scene benchmark: seeded V*-Bench-like scenes, their questions, manifests and crops.

``generate_scene(seed, index, world=PLAIN)`` draws one scene and its ``SceneItem`` (``scenes``), in the
plain world or the harder one (``HARD``: saturated distractors, photograph or texture backgrounds;
``distractors``); ``make_benchmark`` / ``load_manifest`` write and read a benchmark folder
(``manifest``); ``crop_around`` and friends cut views around the targets (``crops``); the vocabulary,
worlds and models are in ``items``, the drawing and backgrounds in ``drawing``.
"""

from foveate.errors import ManifestError
from foveate.synthetic.crops import box_holds, crop_around, objects_in_view, random_crop, union_box
from foveate.synthetic.items import (
    CLUTTER_MAX_CHROMA,
    COLORS,
    DISTRACTOR_COLORS,
    HARD,
    PLAIN,
    SHAPES,
    WORLDS,
    Box,
    Category,
    ColorName,
    Distractor,
    SceneItem,
    SceneObject,
    ShapeName,
    TargetBox,
    World,
    world_named,
    worlds_named,
)
from foveate.synthetic.manifest import MANIFEST_NAME, image_path, load_manifest, make_benchmark
from foveate.synthetic.scenes import generate_scene

__all__ = [
    "CLUTTER_MAX_CHROMA",
    "COLORS",
    "DISTRACTOR_COLORS",
    "HARD",
    "MANIFEST_NAME",
    "PLAIN",
    "SHAPES",
    "WORLDS",
    "Box",
    "Category",
    "ColorName",
    "Distractor",
    "ManifestError",
    "SceneItem",
    "SceneObject",
    "ShapeName",
    "TargetBox",
    "World",
    "box_holds",
    "crop_around",
    "generate_scene",
    "image_path",
    "load_manifest",
    "make_benchmark",
    "objects_in_view",
    "random_crop",
    "union_box",
    "world_named",
    "worlds_named",
]
