"""The synthetic scene benchmark: seeded V*-Bench-like scenes, their questions, manifests and crops.

``generate_scene(seed, index)`` draws one scene and its ``SceneItem`` (``scenes``); ``make_benchmark`` /
``load_manifest`` write and read a benchmark folder (``manifest``); ``crop_around`` and friends cut views
around the targets (``crops``); the vocabulary and models are in ``items``, the drawing in ``drawing``.
"""

from foveate.errors import ManifestError
from foveate.synthetic.crops import crop_around, objects_in_view, random_crop, union_box
from foveate.synthetic.items import (
    CLUTTER_MAX_CHROMA,
    COLORS,
    SHAPES,
    Box,
    Category,
    ColorName,
    SceneItem,
    SceneObject,
    ShapeName,
    TargetBox,
)
from foveate.synthetic.manifest import MANIFEST_NAME, image_path, load_manifest, make_benchmark
from foveate.synthetic.scenes import generate_scene

__all__ = [
    "CLUTTER_MAX_CHROMA",
    "COLORS",
    "MANIFEST_NAME",
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
