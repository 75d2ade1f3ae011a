"""The LLaVA family (LLaVA-1.5 and models built the same way): token arithmetic, attention grid, facts.

Visual tokens: ``LlavaProcessor`` over a standard (CLIP-style) image processor emits
``(H // patch) * (W // patch) + num_additional_image_tokens`` placeholders, minus one under the
``"default"`` feature-select strategy, where ``H x W`` is the size of ``pixel_values`` (usually the centre
crop, so the count is the same for every image: 576 for LLaVA-1.5). ``LlavaTokens`` replicates the
transformers 5.23 pipeline (pad, resize, crop, pad) operation for operation.

Facts: its language model (Llama) continues from a cached image-and-template prefix with plain input ids,
so probes about one view share it; FastV and FasterVLM ([CLS]-attention) pruning run on a Llama language
model; attention over the image tokens is a square patch grid (a centre crop shows the middle of the long
side). ``llava_next`` and ``llava_onevision`` share ZoomEye's LLaVA wording with its bias for them; foveate
cannot predict their token counts (their processors tile in their own way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from foveate.errors import UnsupportedRequestError
from foveate.vlm.profile import Family
from foveate.vlm.prompts import ZoomPrompts
from foveate.vlm.visual_tokens import (
    ProcessorSettings,
    VisualTokenRule,
    check_positive,
    check_size,
    defined_by,
    definer,
    size_pair,
)

__all__ = ["FAMILY", "LLAVA_1_5", "LLAVA_NEXT", "LLAVA_ONEVISION", "LlavaTokens", "ResizeRule", "read_rule"]


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
class LlavaTokens(VisualTokenRule):
    """LLaVA's image processing: ``resize`` (the image processor's ``size``), ``crop_size`` (``(height,
    width)`` of the centre crop, ``None`` when ``do_center_crop`` is off), ``pad_to_square``
    (``LlavaImageProcessor``'s ``do_pad``: pad to a square *before* resizing), ``pad_size`` (a generic
    processor's ``do_pad`` with a fixed ``pad_size``: pad *after* cropping), ``num_additional_image_tokens``
    (1 for CLIP's CLS), ``vision_feature_select_strategy`` (``"default"`` drops one token, anything else
    keeps all). The defaults are LLaVA-1.5's."""

    family: ClassVar[str] = "llava"
    display_name: ClassVar[str] = "LLaVA"

    patch_size: int = 14
    do_resize: bool = True
    resize: ResizeRule = ResizeRule(shortest_edge=336)
    crop_size: tuple[int, int] | None = (336, 336)
    pad_to_square: bool = False
    pad_size: tuple[int, int] | None = None
    num_additional_image_tokens: int = 1
    vision_feature_select_strategy: str | None = "default"

    def __post_init__(self) -> None:
        check_positive(patch_size=self.patch_size)
        for name, pair in (("crop_size", self.crop_size), ("pad_size", self.pad_size)):
            if pair is not None and (len(pair) != 2 or min(pair) < 1):
                raise ValueError(f"{name} must be a (height, width) pair of positive integers, got {pair!r}")

    def processed_size(self, height: int, width: int) -> tuple[int, int]:
        """The size of ``pixel_values``: ``LlavaImageProcessor._preprocess`` / ``PilBackend._preprocess``
        (pad, resize, crop, pad)."""
        height, width = check_size(height, width)
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

    def tokens_for(self, height: int, width: int) -> int:
        ph, pw = self.processed_size(height, width)
        count = (ph // self.patch_size) * (pw // self.patch_size) + self.num_additional_image_tokens
        if self.vision_feature_select_strategy == "default":
            count -= 1
        return count

    def fixed(self) -> bool:
        """Whether ``pixel_values`` has the same size whatever the image (crop, pad or exact resize)."""
        if self.crop_size is not None or self.pad_size is not None:
            return True
        rule = self.resize
        return self.do_resize and not rule.shortest_edge and not (rule.max_height and rule.max_width)

    def cap_hint(self) -> str:
        return "this processor emits the same count for every image size" if self.fixed() else ""


#: LLaVA-1.5 (llava-hf/llava-1.5-*-hf): CLIP ViT-L/14 at 336 px, 576 tokens for every image.
LLAVA_1_5 = LlavaTokens()

_LLAVA_PROCESSORS = frozenset({"LlavaProcessor"})
_STANDARD_BACKENDS = frozenset({"PilBackend", "TorchvisionBackend", "BaseImageProcessorFast"})
_LLAVA_PADDERS = frozenset({"LlavaImageProcessor", "LlavaImageProcessorPil"})


def read_rule(processor: Any, config: Any | None = None) -> LlavaTokens | None:
    """``LlavaTokens`` read off a ``LlavaProcessor`` (None for another processor).

    Settings come from the image processor's attributes, overridden by the processor's own
    ``images_kwargs``, plus the processor's ``patch_size``, ``num_additional_image_tokens`` and
    ``vision_feature_select_strategy``; ``config`` (the model config) only stands in for what the
    processor leaves unset (patch size, strategy). Per-call overrides are not seen.
    """
    if definer(processor, "replace_image_token") not in _LLAVA_PROCESSORS:
        return None
    setting = ProcessorSettings(processor)
    image_processor = setting.image_processor
    if not defined_by(image_processor, ("resize", "center_crop"), _STANDARD_BACKENDS) or not (
        defined_by(image_processor, ("_preprocess",), _STANDARD_BACKENDS | _LLAVA_PADDERS)
    ):
        raise ValueError(
            f"unsupported image processor {setting.ip_kind} for {setting.kind}: it resizes in its own way"
        )
    patch_size = getattr(processor, "patch_size", None)
    if patch_size is None and config is not None:
        patch_size = getattr(getattr(config, "vision_config", None), "patch_size", None)
    if patch_size is None:
        raise ValueError(f"{setting.kind} has no patch_size and no model config was given to read it from")
    # The processor's own strategy decides what it emits, even when it is None (then no token is dropped,
    # whatever the model config says); the config only stands in for a processor without the attribute.
    if hasattr(processor, "vision_feature_select_strategy"):
        strategy = processor.vision_feature_select_strategy
    else:
        strategy = getattr(config, "vision_feature_select_strategy", None)
    do_resize = bool(setting("do_resize", False))
    resize = ResizeRule.from_size(setting("size")) if do_resize else LlavaTokens.resize
    do_pad = bool(setting("do_pad", False))
    pads_first = definer(image_processor, "_preprocess") in _LLAVA_PADDERS
    return LlavaTokens(
        patch_size=int(patch_size),
        do_resize=do_resize,
        resize=resize,
        crop_size=size_pair(setting("crop_size")) if setting("do_center_crop", False) else None,
        pad_to_square=do_pad and pads_first,
        pad_size=size_pair(setting("pad_size")) if do_pad and not pads_first else None,
        num_additional_image_tokens=int(getattr(processor, "num_additional_image_tokens", 0) or 0),
        vision_feature_select_strategy=strategy,
    )


def square_grid(
    inputs: Any, row: int, image: Any, count: int, rule: VisualTokenRule | None = None
) -> tuple[tuple[int, int], tuple[float, float, float, float]]:
    """The image tokens of one prompt as a square patch grid, and the part of the image it covers: after a
    shortest-edge resize and a centre crop, the model saw the middle of the long side."""
    side = round(count**0.5)
    if side * side != count:
        raise UnsupportedRequestError(f"{count} image tokens do not form a square patch grid")
    region = (0.0, 0.0, 1.0, 1.0)
    if isinstance(rule, LlavaTokens) and rule.crop_size is not None and rule.do_resize:
        shortest = rule.resize.shortest_edge or min(rule.crop_size)
        scale = shortest / min(image.height, image.width)
        fy = min(1.0, rule.crop_size[0] / max(1.0, image.height * scale))
        fx = min(1.0, rule.crop_size[1] / max(1.0, image.width * scale))
        region = ((1 - fx) / 2, (1 - fy) / 2, (1 + fx) / 2, (1 + fy) / 2)
    return (side, side), region


FAMILY = Family(
    name="llava",
    model_types=("llava",),
    read_rule=read_rule,
    reference_rule=LLAVA_1_5,
    pruning={"fastv": frozenset({"llama"}), "cls": frozenset({"llama"})},
    prefix_reuse=True,
    relevance_grid=square_grid,
    zoom=ZoomPrompts(),
)

# LLaVA-NeXT and LLaVA-OneVision: ZoomEye's wording with its bias for them; token counts not predicted.
LLAVA_NEXT = Family(name="llava_next", model_types=("llava_next",), zoom=ZoomPrompts(bias=0.6))
LLAVA_ONEVISION = Family(name="llava_onevision", model_types=("llava_onevision",), zoom=ZoomPrompts(bias=0.6))
