"""The answering call: from the whole image or the crop a search settled on, and what it must keep back.

Apart from the search so that a workflow's ``reason`` node answers exactly as the agent does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from foveate.imaging.boxes import Box
from foveate.vlm.base import VLM
from foveate.vlm.budget import TokenLedger
from foveate.vlm.prompts import ZoomPrompts
from foveate.vlm.types import VLMRequest

__all__ = ["ANSWER_TEXT_TOKENS", "Reply", "answer_from", "answer_reserve"]

ANSWER_TEXT_TOKENS = 256
"""Text tokens kept for the answering call beyond its images (question, options, template)."""


@dataclass(frozen=True)
class Reply:
    """What the answering call gave: the answer, each option's probability (multiple choice), and a
    generated answer's length-normalised sequence probability (``VLMResult.confidence``; None for multiple
    choice, or when the backend gave no token log-probabilities)."""

    text: str
    probabilities: list[float] = field(default_factory=list)
    confidence: float | None = None


def answer_from(
    vlm: VLM,
    prompts: ZoomPrompts,
    image: Image.Image,
    question: str,
    options: Sequence[str] | None,
    box: Box | None,
    ledger: TokenLedger | None = None,
    *,
    context: str | None = None,
) -> Reply:
    """The answering call alone: from the whole image (``box`` None) or the crop (plus the whole image when
    the prompts say so): the answer and, with ``options``, their probabilities, else its confidence."""
    views = [image] if box is None else [image.crop(box)]
    if box is not None and prompts.answer_with_full_image:
        views = [image, *views]
    request = VLMRequest.from_prompt(question, images=views, system=context or None)
    if options:
        scored = vlm.score(request, list(options), ledger)
        return Reply(scored.best, scored.probabilities)
    generated = vlm.generate(request, ledger)
    return Reply(generated.text, confidence=generated.confidence)


def answer_reserve(vlm: VLM, prompts: ZoomPrompts, image: Image.Image) -> int:
    """Tokens kept back for the final answer: its images at the model's cost plus a text allowance."""
    per_image = vlm.profile.image_tokens(image.height, image.width)
    images = 2 if prompts.answer_with_full_image else 1
    return images * per_image + ANSWER_TEXT_TOKENS
