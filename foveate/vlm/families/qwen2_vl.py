"""The Qwen2-VL family: token arithmetic, attention grid and facts (Qwen2.5-VL reuses them).

Visual tokens: Qwen2-VL / Qwen2.5-VL / Qwen3-VL processors over ``Qwen2VLImageProcessor`` ``smart_resize``
the image to multiples of ``patch_size * merge_size`` within ``[min_pixels, max_pixels]``, then emit
``(H / patch) * (W / patch) / merge_size**2`` tokens. ``Qwen2VLTokens`` mirrors transformers 5.23 line for
line (Python's round-half-to-even included).

Facts: the language model takes 3-D M-RoPE positions (temporal, height, width), so a cached prefix cannot
be continued with plain input ids (no prefix reuse) and FastV must keep each kept token's positions;
FastV runs on it, FasterVLM does not (its vision tower has no [CLS] token); attention over the image
tokens is the merged patch grid of ``image_grid_thw``.
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

__all__ = ["FAMILY", "QWEN2_VL", "QWEN_PROCESSORS", "Qwen2VLTokens", "merged_grid", "read_rule"]

# transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize refuses more extreme images.
QWEN2_VL_MAX_ASPECT_RATIO = 200


def _smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """``transformers.models.qwen2_vl.image_processing_qwen2_vl.smart_resize``, line for line (floating-point
    quirks included; do not "simplify" the expressions)."""
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


@dataclass(frozen=True)
class Qwen2VLTokens(VisualTokenRule):
    """Qwen2-VL's image processing: ``patch_size``, ``merge_size``, ``min_pixels`` and ``max_pixels``
    (``size["shortest_edge"]`` and ``size["longest_edge"]`` in transformers 5), ``do_resize`` (off: the image
    must already be a multiple of ``patch_size * merge_size``). The defaults are Qwen2-VL's and
    Qwen2.5-VL's checkpoints': 3136 <= pixels <= 12845056, one token per 28x28 pixels."""

    family: ClassVar[str] = "qwen2_vl"
    display_name: ClassVar[str] = "Qwen2-VL"

    patch_size: int = 14
    do_resize: bool = True
    merge_size: int = 2
    min_pixels: int = 56 * 56
    max_pixels: int = 14 * 14 * 4 * 16384

    def __post_init__(self) -> None:
        check_positive(patch_size=self.patch_size, merge_size=self.merge_size, max_pixels=self.max_pixels)
        if self.min_pixels < 0:
            raise ValueError(f"min_pixels must be >= 0, got {self.min_pixels}")

    @property
    def factor(self) -> int:
        return self.patch_size * self.merge_size

    def processed_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``smart_resize`` output (``patch_size * grid``)."""
        height, width = check_size(height, width)
        if not self.do_resize:
            if height % self.factor or width % self.factor:
                raise ValueError(
                    f"with do_resize off, Qwen2-VL needs both sides to be multiples of {self.factor}; "
                    f"got {height}x{width}"
                )
            return height, width
        return _smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)

    def tokens_for(self, height: int, width: int) -> int:
        ph, pw = self.processed_size(height, width)
        return (ph // self.patch_size) * (pw // self.patch_size) // self.merge_size**2

    def snap(self, height: int, width: int) -> tuple[int, int]:
        """Without resizing only multiples of ``patch * merge`` are accepted: round down to them."""
        if not self.do_resize:
            return max(self.factor, height // self.factor * self.factor), max(
                self.factor, width // self.factor * self.factor
            )
        return height, width


#: Qwen2-VL and Qwen2.5-VL checkpoints.
QWEN2_VL = Qwen2VLTokens()

QWEN_PROCESSORS = frozenset(
    {"Qwen2VLProcessor", "Qwen2_5_VLProcessor", "Qwen3VLProcessor", "PaddleOCRVLProcessor"}
)
_QWEN_IMAGE_PROCESSORS = frozenset({"Qwen2VLImageProcessor", "Qwen2VLImageProcessorPil"})


def read_rule(processor: Any, config: Any | None = None) -> Qwen2VLTokens | None:
    """``Qwen2VLTokens`` read off a Qwen2-VL-style processor (None for another processor)."""
    if definer(processor, "replace_image_token") not in QWEN_PROCESSORS:
        return None
    setting = ProcessorSettings(processor)
    image_processor = setting.image_processor
    if not defined_by(image_processor, ("resize", "_preprocess"), _QWEN_IMAGE_PROCESSORS):
        raise ValueError(
            f"unsupported image processor {setting.ip_kind} for {setting.kind}: "
            "expected Qwen2VLImageProcessor"
        )
    size = setting("size")
    min_pixels = size_value(size, "shortest_edge") or getattr(image_processor, "min_pixels", None)
    max_pixels = size_value(size, "longest_edge") or getattr(image_processor, "max_pixels", None)
    if min_pixels is None or max_pixels is None:
        raise ValueError(f"{setting.ip_kind} has no min/max pixels in size={size!r}")
    return Qwen2VLTokens(
        patch_size=int(setting("patch_size")),
        merge_size=int(setting("merge_size")),
        min_pixels=int(min_pixels),
        max_pixels=int(max_pixels),
        do_resize=bool(setting("do_resize", True)),
    )


def merged_grid(
    inputs: Any, row: int, image: Any, count: int, rule: VisualTokenRule | None = None
) -> tuple[tuple[int, int], tuple[float, float, float, float]]:
    """The image tokens of prompt ``row`` as the merged patch grid of ``image_grid_thw`` (the whole image)."""
    merge = rule.merge_size if isinstance(rule, Qwen2VLTokens) else 2
    _, h, w = (int(x) for x in inputs["image_grid_thw"][row])
    return (h // merge, w // merge), (0.0, 0.0, 1.0, 1.0)


FAMILY = Family(
    name="qwen2_vl",
    model_types=("qwen2_vl",),
    read_rule=read_rule,
    reference_rule=QWEN2_VL,
    pruning={"fastv": frozenset({"qwen2_vl_text"})},
    mrope=True,
    prefix_reuse=False,
    relevance_grid=merged_grid,
    zoom=ZoomPrompts(bias=0.6, answer_threshold=0.95),
)
