"""Images as users hand them to foveate, boxes in their pixels, and pictures of what a search looked at.

``images``: decode a path, PIL image, array, bytes or ``data:`` URI safely (never a URL; a decompression
bomb is refused from the header), resize; ``boxes``: box geometry and where a relevance map puts its mass;
``draw``: the trace picture of a search.
"""

from foveate.imaging.boxes import Box, best_window, box_area, box_union, clamp_box, expand_box
from foveate.imaging.draw import save_trace
from foveate.imaging.images import DEFAULT_MAX_PIXELS, check_image, load_image, resize_to, to_data_uri

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "Box",
    "best_window",
    "box_area",
    "box_union",
    "check_image",
    "clamp_box",
    "expand_box",
    "load_image",
    "resize_to",
    "save_trace",
    "to_data_uri",
]
