"""The Idefics3 / SmolVLM family: token arithmetic and facts.

Visual tokens: the longest edge is resized to ``size["longest_edge"]`` (up *or* down), the image is then
resized to multiples of the tile size and cut into ``rows x cols`` tiles plus one global view, each worth
``image_seq_len`` ``<image>`` tokens. ``Idefics3Tokens`` mirrors transformers 5.23 (the odd-to-even bump of
its resize and the 4096 px ceiling included).

Facts: its language model continues from a cached image-and-template prefix with plain input ids, so
probes about one view share it; no pruning and no relevance maps are implemented for it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

from foveate.vlm.profile import Family
from foveate.vlm.prompts import ZoomPrompts
from foveate.vlm.visual_tokens import (
    ProcessorSettings,
    VisualTokenRule,
    check_positive,
    check_size,
    defined_by,
    definer,
    size_value,
)

__all__ = ["FAMILY", "IDEFICS3", "SMOLVLM", "Idefics3Tokens", "read_rule"]

# transformers.models.idefics3.image_processing_idefics3.MAX_IMAGE_SIZE: after the longest-edge resize,
# Idefics3/SmolVLM scale any image whose longest edge is still above this down to it.
IDEFICS3_MAX_IMAGE_SIZE = 4096


def _idefics3_rescale_to_max_len(height: int, width: int, max_len: int) -> tuple[int, int]:
    """``idefics3.image_processing_idefics3._resize_output_size_rescale_to_max_len`` (min_len=1).

    Note that it *upscales* too: the longest edge always becomes ``max_len``.
    """
    aspect_ratio = width / height
    if width >= height:
        width = max_len
        height = int(width / aspect_ratio)
        if height % 2 != 0:
            height += 1
    elif height > width:
        height = max_len
        width = int(height * aspect_ratio)
        if width % 2 != 0:
            width += 1
    return max(height, 1), max(width, 1)


def _idefics3_scale_below_upper_bound(height: int, width: int, max_len: int) -> tuple[int, int]:
    """``idefics3.image_processing_idefics3._resize_output_size_scale_below_upper_bound``."""
    aspect_ratio = width / height
    if width >= height and width > max_len:
        width = max_len
        height = int(width / aspect_ratio)
    elif height > width and height > max_len:
        height = max_len
        width = int(height * aspect_ratio)
    return max(height, 1), max(width, 1)


def _idefics3_resize_for_vision_encoder(height: int, width: int, tile: int) -> tuple[int, int]:
    """``Idefics3ImageProcessor.resize_for_vision_encoder``: both sides up to multiples of the tile.

    The short side is derived from the *rounded-up* long side (``int(width / aspect_ratio)``), so it can
    gain a whole extra tile row compared to rounding it up on its own -- which is what the processor's
    own ``get_number_of_image_patches`` helper does, and why that helper is sometimes wrong.
    """
    aspect_ratio = width / height
    if width >= height:
        width = math.ceil(width / tile) * tile
        height = int(width / aspect_ratio)
        height = math.ceil(height / tile) * tile
    else:
        height = math.ceil(height / tile) * tile
        width = int(height * aspect_ratio)
        width = math.ceil(width / tile) * tile
    return height, width


@dataclass(frozen=True)
class Idefics3Tokens(VisualTokenRule):
    """Idefics3's image processing: ``longest_edge`` (``size["longest_edge"]``), ``max_image_size`` (the
    tile side, ``max_image_size["longest_edge"]``), ``image_seq_len`` (tokens per tile, a processor
    attribute), ``do_image_splitting``, ``do_resize``. The defaults are Idefics3-8B's: a 1456 px longest
    edge, 364 px tiles of 169 tokens."""

    family: ClassVar[str] = "idefics3"
    display_name: ClassVar[str] = "Idefics3/SmolVLM"

    do_resize: bool = True
    longest_edge: int = 4 * 364
    max_image_size: int = 364
    image_seq_len: int = 169
    do_image_splitting: bool = True

    def __post_init__(self) -> None:
        check_positive(
            longest_edge=self.longest_edge,
            max_image_size=self.max_image_size,
            image_seq_len=self.image_seq_len,
        )

    def layout(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``Idefics3ImageProcessor._preprocess`` geometry: ``(canvas_h, canvas_w, rows, cols)``."""
        height, width = check_size(height, width)
        if self.do_resize:
            height, width = _idefics3_rescale_to_max_len(height, width, self.longest_edge)
            height, width = _idefics3_scale_below_upper_bound(height, width, IDEFICS3_MAX_IMAGE_SIZE)
        tile = self.max_image_size
        if not self.do_image_splitting:
            return tile, tile, 0, 0
        height, width = _idefics3_resize_for_vision_encoder(height, width, tile)
        if height < 1 or width < 1:  # cannot happen for sizes the processor accepts; guards the math
            raise ValueError(f"Idefics3 would resize this image to an empty {height}x{width} canvas")
        if height > tile or width > tile:
            return height, width, (height - tile) // tile + 1, (width - tile) // tile + 1
        return height, width, 0, 0

    def processed_size(self, height: int, width: int) -> tuple[int, int]:
        """The canvas that is cut into tiles (``(max_image_size, max_image_size)`` when the image is not
        split, as it is then squashed to one tile)."""
        return self.layout(height, width)[:2]

    def tokens_for(self, height: int, width: int) -> int:
        _, _, rows, cols = self.layout(height, width)
        if rows == 0 and cols == 0:
            return self.image_seq_len
        return (rows * cols + 1) * self.image_seq_len

    def tile_grid(self, height: int, width: int) -> tuple[int, int]:
        """The ``(rows, cols)`` of tiles, ``(0, 0)`` when the image stays one tile (the processor's ``rows``
        / ``cols`` outputs; a split image costs ``rows * cols`` tiles plus one global view)."""
        return self.layout(height, width)[2:]

    def cap_hint(self) -> str:
        if not self.do_resize:
            return ""
        return (
            f"every image is resized to a {self.longest_edge} px longest edge first, so shrinking it does "
            "not reduce its tile count"
        )


#: Idefics3-8B: 1456 px longest edge, 364 px tiles of 169 tokens.
IDEFICS3 = Idefics3Tokens()
#: SmolVLM-256M / 500M: 2048 px longest edge, 512 px tiles of 64 tokens.
SMOLVLM = Idefics3Tokens(longest_edge=2048, max_image_size=512, image_seq_len=64)

_IDEFICS3_PROCESSORS = frozenset({"Idefics3Processor", "SmolVLMProcessor"})
_IDEFICS3_IMAGE_PROCESSORS = frozenset(
    {
        "Idefics3ImageProcessor",
        "Idefics3ImageProcessorPil",
        "SmolVLMImageProcessor",
        "SmolVLMImageProcessorPil",
    }
)


def read_rule(processor: Any, config: Any | None = None) -> Idefics3Tokens | None:
    """``Idefics3Tokens`` read off an Idefics3 / SmolVLM processor (None for another processor); ``config``
    stands in for the processor's ``image_seq_len`` when it has none."""
    if definer(processor, "replace_image_token") not in _IDEFICS3_PROCESSORS:
        return None
    setting = ProcessorSettings(processor)
    methods = ("resize", "_preprocess", "resize_for_vision_encoder", "split_images")
    if not defined_by(setting.image_processor, methods, _IDEFICS3_IMAGE_PROCESSORS):
        raise ValueError(
            f"unsupported image processor {setting.ip_kind} for {setting.kind}: "
            "expected Idefics3ImageProcessor"
        )
    do_resize = bool(setting("do_resize", True))
    longest_edge = size_value(setting("size"), "longest_edge")
    if do_resize and not longest_edge:
        raise ValueError(
            f"{setting.ip_kind} resizes to size={setting('size')!r}; only longest_edge is supported"
        )
    tile = size_value(setting("max_image_size"), "longest_edge")
    if not tile:
        raise ValueError(f"{setting.ip_kind} has no max_image_size['longest_edge']")
    image_seq_len = getattr(processor, "image_seq_len", None)
    if image_seq_len is None and config is not None:
        vision = config.vision_config
        image_seq_len = int(((vision.image_size // vision.patch_size) ** 2) / (config.scale_factor**2))
    if image_seq_len is None:
        raise ValueError(f"{setting.kind} has no image_seq_len and no model config was given")
    return Idefics3Tokens(
        do_resize=do_resize,
        longest_edge=int(longest_edge) if longest_edge else Idefics3Tokens.longest_edge,
        max_image_size=int(tile),
        image_seq_len=int(image_seq_len),
        do_image_splitting=bool(setting("do_image_splitting", True)),
    )


FAMILY = Family(
    name="idefics3",
    model_types=("idefics3", "smolvlm"),
    read_rule=read_rule,
    reference_rule=IDEFICS3,
    prefix_reuse=True,
    zoom=ZoomPrompts(),
)
