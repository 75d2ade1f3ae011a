"""Exact visual-token counts for an image of a given size, and resizing to fit a per-image cap.

Why this module exists: a per-image visual-token cap is only useful if it is enforced *before* the
processor runs (otherwise the tokens are already spent), and against an OpenAI-compatible server the
processor's output is never seen at all. So the count has to be predicted from ``(height, width)``
alone. An approximation would make the cap either leaky (over) or wasteful (under), so each family's rule
(``foveate.vlm.families``: LLaVA, Qwen2-VL, Idefics3 / SmolVLM) replicates, operation for operation, what
the transformers 5.23 image processors and processors do; ``tests/test_visual_tokens.py`` checks the
predictions against the real processors' outputs.

This module holds what every rule shares: the ``VisualTokenRule`` base class with ``fit`` (the search for
the largest size under a cap), size validation, and the helpers that read settings off a processor.

The counts are of image-placeholder tokens only (the token the model replaces with image features);
wrapper tokens such as ``<|vision_start|>`` or ``<fake_token_around_image>`` are not included.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from foveate.errors import VisualTokenCapError

__all__ = ["VisualTokenCapError", "VisualTokenRule", "check_size"]

# Each step of the coarse search in ``fit`` shrinks the long side by this factor (see ``fit``).
_LADDER_STEP = 0.9


def check_size(height: Any, width: Any) -> tuple[int, int]:
    """Validate an image size; numpy integers are accepted, floats and non-positive sizes are not."""
    try:
        h, w = operator.index(height), operator.index(width)
    except TypeError:
        raise ValueError(f"image size must be integers, got height={height!r}, width={width!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"image size must be at least 1x1, got {h}x{w} (height x width)")
    return h, w


def check_positive(**values: Any) -> None:
    """Raise ``ValueError`` naming the first setting that is not a positive integer."""
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class VisualTokenRule:
    """How one model family turns an image of a given size into image-placeholder tokens.

    Each family module subclasses it with its processor's settings as fields and implements
    ``processed_size`` and ``tokens_for``; ``fit`` is shared.
    """

    family: ClassVar[str] = ""
    """The family the rule belongs to (``"llava"``, ``"qwen2_vl"``, ``"idefics3"``)."""
    display_name: ClassVar[str] = ""
    """How messages name the family (``"Qwen2-VL"``)."""

    def processed_size(self, height: int, width: int) -> tuple[int, int]:
        """The ``(height, width)`` the vision encoder sees."""
        raise NotImplementedError

    def tokens_for(self, height: int, width: int) -> int:
        """Number of image-placeholder tokens the processor emits for one ``height x width`` image."""
        raise NotImplementedError

    def native_side(self) -> int:
        """The side of the input the model sees a large image at: the short side of what a 4096 px square
        is processed to (at least 8)."""
        height, width = self.processed_size(4096, 4096)
        return int(max(8, min(height, width)))

    def snap(self, height: int, width: int) -> tuple[int, int]:
        """The size the processor accepts for ``height x width`` unchanged (most accept any size)."""
        return height, width

    def cap_hint(self) -> str:
        """Why shrinking cannot reach a cap, when the family has a reason (appended to the error)."""
        return ""

    # --------------------------------------------------------------------------------------------- fit
    def fit(self, height: int, width: int, max_tokens: int) -> tuple[int, int]:
        """The size to resize an image to so that it costs at most ``max_tokens`` visual tokens.

        Returns ``(height, width)`` unchanged when it already fits: never upscales (``snap`` may round a
        size the processor cannot take as is). Otherwise it shrinks the image keeping its aspect ratio: the
        long side is stepped one pixel at a time and the short side is ``ceil(short * new_long / long)``,
        so it is never more than one pixel off, the ratio never grows (Qwen2-VL rejects ratios above 200),
        and the long side stops where the exact short side would drop below one pixel. The count is not
        strictly monotonic in size (rounding, Qwen2-VL's ``max_pixels`` clamp), so the search walks down in
        10% steps to the first step that fits, then bisects between it and the step above: the result
        always fits, and one more pixel on its long side would not.

        Raises ``VisualTokenCapError`` (a ``ValueError``), naming the family, the cap and the fewest
        tokens shrinking can reach, when no size fits: e.g. LLaVA-1.5 always costs 576 tokens, and
        Idefics3/SmolVLM resize every image to the same longest edge, so shrinking cannot help them.
        """
        h, w = check_size(height, width)
        try:
            cap = operator.index(max_tokens)
        except TypeError:
            raise ValueError(f"max_tokens must be an integer, got {max_tokens!r}") from None
        if cap < 1:
            raise ValueError(f"max_tokens must be >= 1, got {cap}")

        start = self.snap(h, w)
        first = self.tokens_for(*start)
        if first <= cap:
            return start

        long, short = max(h, w), min(h, w)

        def candidate(new_long: int) -> tuple[int, int]:
            new_short = -(-short * new_long // long)  # ceil without floats
            size = (new_long, new_short) if h >= w else (new_short, new_long)
            return self.snap(*size)

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

    def _cap_message(self, height: int, width: int, cap: int, fewest: int) -> str:
        message = (
            f"a {height}x{width} image cannot be brought under the cap of {cap} visual tokens per image for "
            f"the {self.display_name} family ({self.family!r}): the fewest it can cost, at its aspect ratio, "
            f"is {fewest}"
        )
        hint = self.cap_hint()
        return f"{message} -- {hint}" if hint else message


def _ladder(long: int, lowest: int) -> Iterable[int]:
    """Long sides to try, descending from below ``long`` to ``lowest`` by roughly 10% at a time."""
    current = long
    while current > lowest:
        current = max(lowest, min(current - 1, int(current * _LADDER_STEP)))
        yield current


# ------------------------------------------------------------------------------------------------------
# Reading settings off a loaded processor (the family modules' ``read_rule`` functions use these)
# ------------------------------------------------------------------------------------------------------

# A processor or image processor is accepted when the methods that decide the count are *defined* by one
# of the family's classes (found along the MRO), so that a plain subclass is accepted but a model that
# reuses a class and overrides its geometry is not. Matching by name keeps transformers unimported here.


def definer(obj: Any, method: str) -> str | None:
    """Name of the class along ``type(obj).__mro__`` that defines ``method``."""
    for klass in type(obj).__mro__:
        if method in vars(klass):
            return klass.__name__
    return None


def defined_by(obj: Any, methods: Iterable[str], owners: frozenset[str]) -> bool:
    return all(definer(obj, method) in owners for method in methods)


def size_value(size: Any, key: str) -> int | None:
    """``size[key]`` for a ``SizeDict``, a ``dict`` or ``None``; ``None`` when absent."""
    if size is None:
        return None
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return None if value is None else int(value)


def size_pair(value: Any) -> tuple[int, int] | None:
    """A ``crop_size`` / ``pad_size`` (``SizeDict``, ``dict`` or int) as ``(height, width)``."""
    if value is None:
        return None
    if isinstance(value, int):
        return value, value
    height, width = size_value(value, "height"), size_value(value, "width")
    if not height or not width:
        raise ValueError(f"expected a size with height and width, got {value!r}")
    return height, width


class ProcessorSettings:
    """A processor's image settings: the processor's own ``images_kwargs`` defaults first, then its image
    processor's attributes."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.kind = type(processor).__name__
        image_processor = getattr(processor, "image_processor", None)
        if image_processor is None:
            raise ValueError(f"unsupported processor {self.kind}: it has no image_processor")
        self.image_processor = image_processor
        self.ip_kind = type(image_processor).__name__
        self.overrides = dict(getattr(processor, "images_kwargs", None) or {})

    def __call__(self, name: str, default: Any = None) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        value = getattr(self.image_processor, name, None)
        return default if value is None else value
