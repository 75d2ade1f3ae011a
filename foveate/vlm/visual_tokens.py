"""Exact visual-token counts for an image of a given size, and resizing to fit a per-image cap.

Why this module exists: a per-image visual-token cap is only useful if it is enforced *before* the
processor runs (otherwise the tokens are already spent), and against an OpenAI-compatible server the
processor's output is never seen at all. So the count has to be predicted from ``(height, width)``
alone. An approximation would make the cap either leaky (over) or wasteful (under), so every function
here replicates, operation for operation, what the transformers 5.23 image processors and processors
do: the same integer truncations, Python's round-half-to-even in ``smart_resize``, the odd-to-even bump
in Idefics3's resize, the 4096 px ceiling, and so on. ``tests/test_visual_tokens.py`` checks the
predictions against the real processors' outputs.

Three families are covered, each in the variant transformers actually runs:

- ``"llava"``: ``LlavaProcessor`` over a standard (CLIP-style) image processor. The count is
  ``(H // patch) * (W // patch) + num_additional_image_tokens``, minus one under the ``"default"``
  feature-select strategy, where ``H x W`` is the size of ``pixel_values`` (usually the centre crop,
  so the count is the same for every image: 576 for LLaVA-1.5).
- ``"qwen2_vl"``: Qwen2-VL / Qwen2.5-VL / Qwen3-VL processors over ``Qwen2VLImageProcessor``:
  ``smart_resize`` to multiples of ``patch_size * merge_size`` within ``[min_pixels, max_pixels]``,
  then ``(H / patch) * (W / patch) / merge_size**2`` tokens.
- ``"idefics3"``: Idefics3 / SmolVLM. The longest edge is resized to ``size["longest_edge"]`` (up *or*
  down), the image is then resized to multiples of the tile size and cut into ``rows x cols`` tiles
  plus one global view, each worth ``image_seq_len`` ``<image>`` tokens.

The counts are of image-placeholder tokens only (the token the model replaces with image features);
wrapper tokens such as ``<|vision_start|>`` or ``<fake_token_around_image>`` are not included.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from foveate.errors import VisualTokenCapError

__all__ = [
    "IDEFICS3",
    "LLAVA_1_5",
    "QWEN2_VL",
    "SMOLVLM",
    "Family",
    "ResizeRule",
    "VisualTokenCapError",
    "VisualTokenSpec",
    "spec_from_processor",
]

Family = Literal["llava", "qwen2_vl", "idefics3"]
_FAMILIES: tuple[str, ...] = get_args(Family)
_FAMILY_NAMES = {"llava": "LLaVA", "qwen2_vl": "Qwen2-VL", "idefics3": "Idefics3/SmolVLM"}

# transformers.models.idefics3.image_processing_idefics3.MAX_IMAGE_SIZE: after the longest-edge resize,
# Idefics3/SmolVLM scale any image whose longest edge is still above this down to it.
IDEFICS3_MAX_IMAGE_SIZE = 4096

# transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize refuses more extreme images.
QWEN2_VL_MAX_ASPECT_RATIO = 200

# Each step of the coarse search in ``fit`` shrinks the long side by this factor (see ``fit``).
_LADDER_STEP = 0.9


def _size(height: Any, width: Any) -> tuple[int, int]:
    """Validate an image size; numpy integers are accepted, floats and non-positive sizes are not."""
    try:
        h, w = operator.index(height), operator.index(width)
    except TypeError:
        raise ValueError(f"image size must be integers, got height={height!r}, width={width!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"image size must be at least 1x1, got {h}x{w} (height x width)")
    return h, w


# --------------------------------------------------------------------------------------------------
# Replicas of transformers' size arithmetic. Each mirrors the named function line for line so that
# floating-point behaviour (including its quirks) is identical; do not "simplify" the expressions.
# --------------------------------------------------------------------------------------------------


def _smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """``transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize``."""
    if max(height, width) / min(height, width) > QWEN2_VL_MAX_ASPECT_RATIO:
        raise ValueError(
            f"Qwen2-VL refuses images with an aspect ratio above {QWEN2_VL_MAX_ASPECT_RATIO}, "
            f"got {height}x{width} (ratio {max(height, width) / min(height, width)})"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


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
class ResizeRule:
    """The ``size`` setting of a standard (CLIP-style) image processor, as transformers reads it.

    Mirrors ``transformers.image_utils.SizeDict`` and the branch order of ``PilBackend.resize`` /
    ``TorchvisionBackend.resize``: shortest+longest edge, then shortest edge alone, then max height and
    width, then an exact height and width. A zero or missing value counts as absent, as there.
    """

    shortest_edge: int | None = None
    longest_edge: int | None = None
    height: int | None = None
    width: int | None = None
    max_height: int | None = None
    max_width: int | None = None

    def __post_init__(self) -> None:
        if not (self.shortest_edge or (self.max_height and self.max_width) or (self.height and self.width)):
            raise ValueError(
                "a resize rule needs shortest_edge, or max_height and max_width, or height and width; "
                f"got {self}"
            )

    @classmethod
    def from_size(cls, size: Any) -> ResizeRule:
        """Build from a transformers ``SizeDict`` or a plain ``dict`` with the same keys."""

        def get(key: str) -> int | None:
            value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
            return None if value is None else int(value)

        return cls(
            shortest_edge=get("shortest_edge"),
            longest_edge=get("longest_edge"),
            height=get("height"),
            width=get("width"),
            max_height=get("max_height"),
            max_width=get("max_width"),
        )

    def apply(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` an image of this size is resized to."""
        if self.shortest_edge and self.longest_edge:
            return self._with_aspect_ratio(height, width, self.shortest_edge, self.longest_edge)
        if self.shortest_edge:
            # image_transforms.get_resize_output_image_size(default_to_square=False, max_size=None)
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.shortest_edge, int(self.shortest_edge * long / short)
            return (new_long, new_short) if width <= height else (new_short, new_long)
        if self.max_height and self.max_width:
            # image_utils.get_image_size_for_max_height_width: note that it upscales as well
            min_scale = min(self.max_height / height, self.max_width / width)
            return int(height * min_scale), int(width * min_scale)
        assert self.height and self.width  # guaranteed by __post_init__
        return self.height, self.width

    @staticmethod
    def _with_aspect_ratio(height: int, width: int, size: int, max_size: int) -> tuple[int, int]:
        """``transformers.image_transforms.get_size_with_aspect_ratio``."""
        raw_size = None
        min_original_size = float(min((height, width)))
        max_original_size = float(max((height, width)))
        if max_original_size / min_original_size * size > max_size:
            raw_size = max_size * min_original_size / max_original_size
            size = round(raw_size)
        if (height <= width and height == size) or (width <= height and width == size):
            oh, ow = height, width
        elif width < height:
            ow = size
            oh = int(raw_size * height / width) if raw_size is not None else int(size * height / width)
        else:
            oh = size
            ow = int(raw_size * width / height) if raw_size is not None else int(size * width / height)
        return oh, ow


@dataclass(frozen=True)
class VisualTokenSpec:
    """How one model family turns an image of a given size into image-placeholder tokens.

    Only the fields of ``family`` are read; the defaults are those of the reference checkpoint of each
    family (LLaVA-1.5, Qwen2-VL / Qwen2.5-VL, Idefics3-8B), so ``VisualTokenSpec("qwen2_vl")`` already
    describes the real Qwen2-VL. Use ``spec_from_processor`` to read the settings off a loaded processor.

    Fields, by family:

    - all: ``patch_size`` (the ViT patch, LLaVA and Qwen2-VL), ``do_resize`` (off: the image reaches the
      vision tower at its own size).
    - ``"llava"``: ``resize`` (the image processor's ``size``), ``crop_size`` (``(height, width)`` of the
      centre crop, ``None`` when ``do_center_crop`` is off), ``pad_to_square`` (``LlavaImageProcessor``'s
      ``do_pad``: pad to a square *before* resizing), ``pad_size`` (a generic processor's ``do_pad`` with a
      fixed ``pad_size``: pad *after* cropping), ``num_additional_image_tokens`` (1 for CLIP's CLS),
      ``vision_feature_select_strategy`` (``"default"`` drops one token, anything else keeps all).
    - ``"qwen2_vl"``: ``merge_size``, ``min_pixels`` and ``max_pixels`` (``size["shortest_edge"]`` and
      ``size["longest_edge"]`` in transformers 5).
    - ``"idefics3"``: ``longest_edge`` (``size["longest_edge"]``), ``max_image_size`` (the tile side,
      ``max_image_size["longest_edge"]``), ``image_seq_len`` (tokens per tile, a processor attribute),
      ``do_image_splitting``.
    """

    family: Family
    patch_size: int = 14
    do_resize: bool = True
    # LLaVA
    resize: ResizeRule = ResizeRule(shortest_edge=336)
    crop_size: tuple[int, int] | None = (336, 336)
    pad_to_square: bool = False
    pad_size: tuple[int, int] | None = None
    num_additional_image_tokens: int = 1
    vision_feature_select_strategy: str | None = "default"
    # Qwen2-VL
    merge_size: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 14 * 14 * 4 * 16384
    # Idefics3 / SmolVLM
    longest_edge: int = 4 * 364
    max_image_size: int = 364
    image_seq_len: int = 169
    do_image_splitting: bool = True

    def __post_init__(self) -> None:
        if self.family not in _FAMILIES:
            raise ValueError(f"unknown visual-token family {self.family!r}; expected one of {_FAMILIES}")
        positive = {
            "patch_size": self.patch_size,
            "merge_size": self.merge_size,
            "max_pixels": self.max_pixels,
            "longest_edge": self.longest_edge,
            "max_image_size": self.max_image_size,
            "image_seq_len": self.image_seq_len,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.min_pixels < 0:
            raise ValueError(f"min_pixels must be >= 0, got {self.min_pixels}")
        for name, pair in (("crop_size", self.crop_size), ("pad_size", self.pad_size)):
            if pair is not None and (len(pair) != 2 or min(pair) < 1):
                raise ValueError(f"{name} must be a (height, width) pair of positive integers, got {pair!r}")

    # ------------------------------------------------------------------------------------------ counts
    def processed_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` the vision encoder sees.

        LLaVA: the size of ``pixel_values``. Qwen2-VL: the ``smart_resize`` output (``14 * grid``).
        Idefics3: the canvas that is cut into tiles (``(max_image_size, max_image_size)`` when the image
        is not split, as it is then squashed to one tile).
        """
        h, w = _size(height, width)
        if self.family == "llava":
            return self._llava_size(h, w)
        if self.family == "qwen2_vl":
            return self._qwen_size(h, w)
        return self._idefics3_layout(h, w)[:2]

    def tokens_for(self, height: int, width: int) -> int:
        """Number of image-placeholder tokens the processor emits for one ``height x width`` image."""
        h, w = _size(height, width)
        if self.family == "llava":
            ph, pw = self._llava_size(h, w)
            count = (ph // self.patch_size) * (pw // self.patch_size) + self.num_additional_image_tokens
            if self.vision_feature_select_strategy == "default":
                count -= 1
            return count
        if self.family == "qwen2_vl":
            ph, pw = self._qwen_size(h, w)
            return (ph // self.patch_size) * (pw // self.patch_size) // self.merge_size**2
        _, _, rows, cols = self._idefics3_layout(h, w)
        if rows == 0 and cols == 0:
            return self.image_seq_len
        return (rows * cols + 1) * self.image_seq_len

    def tile_grid(self, height: int, width: int) -> tuple[int, int]:
        """Idefics3 only: the ``(rows, cols)`` of tiles, ``(0, 0)`` when the image stays one tile.

        These are the processor's ``rows`` / ``cols`` outputs; a split image costs ``rows * cols`` tiles
        plus one global view.
        """
        if self.family != "idefics3":
            raise ValueError(f"tile_grid is only defined for the idefics3 family, not {self.family!r}")
        h, w = _size(height, width)
        return self._idefics3_layout(h, w)[2:]

    def _llava_size(self, height: int, width: int) -> tuple[int, int]:
        """``LlavaImageProcessor._preprocess`` / ``PilBackend._preprocess``: pad, resize, crop, pad."""
        if self.pad_to_square:
            height = width = max(height, width)
        if self.do_resize:
            height, width = self.resize.apply(height, width)
        if self.crop_size is not None:
            height, width = self.crop_size  # centre_crop pads when the image is smaller than the crop
        if self.pad_size is not None:
            if height > self.pad_size[0] or width > self.pad_size[1]:
                raise ValueError(
                    f"the processor cannot pad a {height}x{width} image to pad_size {self.pad_size}"
                )
            height, width = self.pad_size
        return height, width

    def _llava_fixed(self) -> bool:
        """Whether ``pixel_values`` has the same size whatever the image (crop, pad or exact resize)."""
        if self.crop_size is not None or self.pad_size is not None:
            return True
        rule = self.resize
        return self.do_resize and not rule.shortest_edge and not (rule.max_height and rule.max_width)

    def _qwen_size(self, height: int, width: int) -> tuple[int, int]:
        factor = self.patch_size * self.merge_size
        if not self.do_resize:
            if height % factor or width % factor:
                raise ValueError(
                    f"with do_resize off, Qwen2-VL needs both sides to be multiples of {factor}; "
                    f"got {height}x{width}"
                )
            return height, width
        return _smart_resize(height, width, factor, self.min_pixels, self.max_pixels)

    def _idefics3_layout(self, height: int, width: int) -> tuple[int, int, int, int]:
        """``Idefics3ImageProcessor._preprocess`` geometry: ``(canvas_h, canvas_w, rows, cols)``."""
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

    # --------------------------------------------------------------------------------------------- fit
    def fit(self, height: int, width: int, max_tokens: int) -> tuple[int, int]:
        """The size to resize an image to so that it costs at most ``max_tokens`` visual tokens.

        Returns ``(height, width)`` unchanged when it already fits: never upscales. (Qwen2-VL with
        ``do_resize`` off is the exception: sizes are always rounded down to multiples of its 28 px grid.)
        Otherwise it shrinks the image keeping its aspect ratio: the long side is stepped one pixel at a
        time and the short side is ``ceil(short * new_long / long)``, so it is never more than one pixel
        off, the ratio never grows (Qwen2-VL rejects ratios above 200), and the long side stops where
        the exact short side would drop below one pixel. The count is not strictly monotonic in size
        (rounding, Qwen2-VL's ``max_pixels`` clamp), so the search walks down in 10% steps to the first
        step that fits, then bisects between it and the step above: the result always fits, and one
        more pixel on its long side would not.

        Raises ``VisualTokenCapError`` (a ``ValueError``), naming the family, the cap and the fewest
        tokens shrinking can reach, when no size fits: e.g. LLaVA-1.5 always costs 576 tokens, and
        Idefics3/SmolVLM resize every image to the same longest edge, so shrinking cannot help them.
        """
        h, w = _size(height, width)
        try:
            cap = operator.index(max_tokens)
        except TypeError:
            raise ValueError(f"max_tokens must be an integer, got {max_tokens!r}") from None
        if cap < 1:
            raise ValueError(f"max_tokens must be >= 1, got {cap}")

        start = self._snap(h, w)
        first = self.tokens_for(*start)
        if first <= cap:
            return start

        long, short = max(h, w), min(h, w)

        def candidate(new_long: int) -> tuple[int, int]:
            new_short = -(-short * new_long // long)  # ceil without floats
            size = (new_long, new_short) if h >= w else (new_short, new_long)
            return self._snap(*size)

        fewest = first
        above, below = long, 0  # above: known not to fit; below: known to fit (0 = none found yet)
        for new_long in _ladder(long, -(-long // short)):
            tokens = self.tokens_for(*candidate(new_long))
            fewest = min(fewest, tokens)
            if tokens <= cap:
                below = new_long
                break
            above = new_long
        if below == 0:
            raise VisualTokenCapError(self._cap_message(h, w, cap, fewest), needed=fewest, remaining=cap)
        while above - below > 1:
            middle = (above + below) // 2
            if self.tokens_for(*candidate(middle)) <= cap:
                below = middle
            else:
                above = middle
        return candidate(below)

    def _snap(self, height: int, width: int) -> tuple[int, int]:
        """Qwen2-VL without resizing only accepts multiples of ``patch * merge``: round down to them."""
        if self.family == "qwen2_vl" and not self.do_resize:
            factor = self.patch_size * self.merge_size
            return max(factor, height // factor * factor), max(factor, width // factor * factor)
        return height, width

    def _cap_message(self, height: int, width: int, cap: int, fewest: int) -> str:
        name = _FAMILY_NAMES[self.family]
        message = (
            f"a {height}x{width} image cannot be brought under the cap of {cap} visual tokens per image for "
            f"the {name} family ({self.family!r}): the fewest it can cost, at its aspect ratio, is {fewest}"
        )
        if self.family == "llava" and self._llava_fixed():
            message += " -- this processor emits the same count for every image size"
        elif self.family == "idefics3" and self.do_resize:
            message += (
                f" -- every image is resized to a {self.longest_edge} px longest edge first, so shrinking "
                "it does not reduce its tile count"
            )
        return message


def _ladder(long: int, lowest: int) -> Iterable[int]:
    """Long sides to try, descending from below ``long`` to ``lowest`` by roughly 10% at a time."""
    current = long
    while current > lowest:
        current = max(lowest, min(current - 1, int(current * _LADDER_STEP)))
        yield current


#: LLaVA-1.5 (llava-hf/llava-1.5-*-hf): CLIP ViT-L/14 at 336 px, 576 tokens for every image.
LLAVA_1_5 = VisualTokenSpec("llava")
#: Qwen2-VL and Qwen2.5-VL checkpoints: 3136 <= pixels <= 12845056, one token per 28x28 pixels.
QWEN2_VL = VisualTokenSpec("qwen2_vl")
#: Idefics3-8B: 1456 px longest edge, 364 px tiles of 169 tokens.
IDEFICS3 = VisualTokenSpec("idefics3")
#: SmolVLM-256M / 500M: 2048 px longest edge, 512 px tiles of 64 tokens.
SMOLVLM = VisualTokenSpec("idefics3", longest_edge=2048, max_image_size=512, image_seq_len=64)


# ------------------------------------------------------------------------------------------------------
# Reading a spec off a loaded processor
# ------------------------------------------------------------------------------------------------------

# A processor or image processor is accepted when the methods that decide the count are *defined* by
# one of these classes (found along the MRO), so that a plain subclass is accepted but a model that
# reuses a class and overrides its geometry is not. Matching by name keeps transformers unimported here.
_LLAVA_PROCESSORS = frozenset({"LlavaProcessor"})
_QWEN_PROCESSORS = frozenset(
    {"Qwen2VLProcessor", "Qwen2_5_VLProcessor", "Qwen3VLProcessor", "PaddleOCRVLProcessor"}
)
_IDEFICS3_PROCESSORS = frozenset({"Idefics3Processor", "SmolVLMProcessor"})
_STANDARD_BACKENDS = frozenset({"PilBackend", "TorchvisionBackend", "BaseImageProcessorFast"})
_LLAVA_PADDERS = frozenset({"LlavaImageProcessor", "LlavaImageProcessorPil"})
_QWEN_IMAGE_PROCESSORS = frozenset({"Qwen2VLImageProcessor", "Qwen2VLImageProcessorPil"})
_IDEFICS3_IMAGE_PROCESSORS = frozenset(
    {
        "Idefics3ImageProcessor",
        "Idefics3ImageProcessorPil",
        "SmolVLMImageProcessor",
        "SmolVLMImageProcessorPil",
    }
)


def _definer(obj: Any, method: str) -> str | None:
    """Name of the class along ``type(obj).__mro__`` that defines ``method``."""
    for klass in type(obj).__mro__:
        if method in vars(klass):
            return klass.__name__
    return None


def _defined_by(obj: Any, methods: Iterable[str], owners: frozenset[str]) -> bool:
    return all(_definer(obj, method) in owners for method in methods)


def spec_from_processor(processor: Any, config: Any | None = None) -> VisualTokenSpec:
    """Read a ``VisualTokenSpec`` off a loaded transformers processor.

    Settings come from the image processor's attributes (``size``, ``crop_size``, ``max_image_size``,
    ``do_image_splitting``, ``patch_size``, ``merge_size``, ...), overridden by the processor's own
    ``images_kwargs`` defaults where it has any, plus the processor's ``patch_size``,
    ``num_additional_image_tokens``, ``vision_feature_select_strategy`` (LLaVA) and ``image_seq_len``
    (Idefics3). ``config`` (the model config) is only consulted for what the processor leaves unset:
    LLaVA's patch size and feature-select strategy, Idefics3's tokens per tile.

    The spec describes calls made with the processor's defaults; per-call overrides (e.g.
    ``do_image_splitting=False``) are not seen. Raises ``ValueError`` naming the class for an
    unsupported processor.
    """
    kind = type(processor).__name__
    image_processor = getattr(processor, "image_processor", None)
    if image_processor is None:
        raise ValueError(f"unsupported processor {kind}: it has no image_processor")
    ip_kind = type(image_processor).__name__
    overrides = dict(getattr(processor, "images_kwargs", None) or {})

    def setting(name: str, default: Any = None) -> Any:
        if name in overrides:
            return overrides[name]
        value = getattr(image_processor, name, None)
        return default if value is None else value

    replacer = _definer(processor, "replace_image_token")
    if replacer in _LLAVA_PROCESSORS:
        if not _defined_by(image_processor, ("resize", "center_crop"), _STANDARD_BACKENDS) or not (
            _defined_by(image_processor, ("_preprocess",), _STANDARD_BACKENDS | _LLAVA_PADDERS)
        ):
            raise ValueError(f"unsupported image processor {ip_kind} for {kind}: it resizes in its own way")
        return _llava_spec(processor, image_processor, setting, config)
    if replacer in _QWEN_PROCESSORS:
        if not _defined_by(image_processor, ("resize", "_preprocess"), _QWEN_IMAGE_PROCESSORS):
            raise ValueError(
                f"unsupported image processor {ip_kind} for {kind}: expected Qwen2VLImageProcessor"
            )
        size = setting("size")
        min_pixels = _size_value(size, "shortest_edge") or getattr(image_processor, "min_pixels", None)
        max_pixels = _size_value(size, "longest_edge") or getattr(image_processor, "max_pixels", None)
        if min_pixels is None or max_pixels is None:
            raise ValueError(f"{ip_kind} has no min/max pixels in size={size!r}")
        return VisualTokenSpec(
            "qwen2_vl",
            patch_size=int(setting("patch_size")),
            merge_size=int(setting("merge_size")),
            min_pixels=int(min_pixels),
            max_pixels=int(max_pixels),
            do_resize=bool(setting("do_resize", True)),
        )
    if replacer in _IDEFICS3_PROCESSORS:
        methods = ("resize", "_preprocess", "resize_for_vision_encoder", "split_images")
        if not _defined_by(image_processor, methods, _IDEFICS3_IMAGE_PROCESSORS):
            raise ValueError(
                f"unsupported image processor {ip_kind} for {kind}: expected Idefics3ImageProcessor"
            )
        do_resize = bool(setting("do_resize", True))
        longest_edge = _size_value(setting("size"), "longest_edge")
        if do_resize and not longest_edge:
            raise ValueError(f"{ip_kind} resizes to size={setting('size')!r}; only longest_edge is supported")
        tile = _size_value(setting("max_image_size"), "longest_edge")
        if not tile:
            raise ValueError(f"{ip_kind} has no max_image_size['longest_edge']")
        image_seq_len = getattr(processor, "image_seq_len", None)
        if image_seq_len is None and config is not None:
            vision = config.vision_config
            image_seq_len = int(((vision.image_size // vision.patch_size) ** 2) / (config.scale_factor**2))
        if image_seq_len is None:
            raise ValueError(f"{kind} has no image_seq_len and no model config was given")
        return VisualTokenSpec(
            "idefics3",
            do_resize=do_resize,
            longest_edge=int(longest_edge) if longest_edge else VisualTokenSpec.longest_edge,
            max_image_size=int(tile),
            image_seq_len=int(image_seq_len),
            do_image_splitting=bool(setting("do_image_splitting", True)),
        )
    raise ValueError(
        f"unsupported processor {kind}: visual tokens can be predicted for LlavaProcessor, "
        "Qwen2VLProcessor / Qwen2_5_VLProcessor / Qwen3VLProcessor / PaddleOCRVLProcessor and "
        "Idefics3Processor / SmolVLMProcessor"
    )


def _size_value(size: Any, key: str) -> int | None:
    """``size[key]`` for a ``SizeDict``, a ``dict`` or ``None``; ``None`` when absent."""
    if size is None:
        return None
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return None if value is None else int(value)


def _pair(value: Any) -> tuple[int, int] | None:
    """A ``crop_size`` / ``pad_size`` (``SizeDict``, ``dict`` or int) as ``(height, width)``."""
    if value is None:
        return None
    if isinstance(value, int):
        return value, value
    height, width = _size_value(value, "height"), _size_value(value, "width")
    if not height or not width:
        raise ValueError(f"expected a size with height and width, got {value!r}")
    return height, width


def _llava_spec(
    processor: Any, image_processor: Any, setting: Callable[..., Any], config: Any | None
) -> VisualTokenSpec:
    kind = type(processor).__name__
    patch_size = getattr(processor, "patch_size", None)
    if patch_size is None and config is not None:
        patch_size = getattr(getattr(config, "vision_config", None), "patch_size", None)
    if patch_size is None:
        raise ValueError(f"{kind} has no patch_size and no model config was given to read it from")
    # The processor's own strategy decides what it emits, even when it is None (then no token is dropped,
    # whatever the model config says); the config only stands in for a processor without the attribute.
    if hasattr(processor, "vision_feature_select_strategy"):
        strategy = processor.vision_feature_select_strategy
    else:
        strategy = getattr(config, "vision_feature_select_strategy", None)
    do_resize = bool(setting("do_resize", False))
    size = setting("size")
    resize = ResizeRule.from_size(size) if do_resize else VisualTokenSpec.resize
    do_pad = bool(setting("do_pad", False))
    pads_first = _definer(image_processor, "_preprocess") in _LLAVA_PADDERS
    pad_size = _pair(setting("pad_size")) if do_pad and not pads_first else None
    return VisualTokenSpec(
        "llava",
        patch_size=int(patch_size),
        do_resize=do_resize,
        resize=resize,
        crop_size=_pair(setting("crop_size")) if setting("do_center_crop", False) else None,
        pad_to_square=do_pad and pads_first,
        pad_size=pad_size,
        num_additional_image_tokens=int(getattr(processor, "num_additional_image_tokens", 0) or 0),
        vision_feature_select_strategy=strategy,
    )
