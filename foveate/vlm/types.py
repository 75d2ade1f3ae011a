"""Requests to and results from a VLM, as pydantic models.

These cross every boundary in foveate (agents, graphs, servers, the CLI), so they are
validated once, here: images are decoded when a request is built, so a corrupt file fails
at the caller's line and not deep inside a model call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from foveate.imaging.images import load_image
from foveate.vlm.budget import TokenBudget, TokenUsage


class TextPart(BaseModel):
    """A piece of text inside a message."""

    model_config = ConfigDict(frozen=True)
    type: Literal["text"] = "text"
    text: str


class ImagePart(BaseModel):
    """An image inside a message, decoded to RGB at construction.

    Accepts a path, PIL image, numpy array, bytes or ``data:`` URI (never a URL).
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    type: Literal["image"] = "image"
    image: Image.Image

    @field_validator("image", mode="before")
    @classmethod
    def _decode(cls, value: Any) -> Image.Image:
        return load_image(value)


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


def _as_part(item: Any) -> TextPart | ImagePart:
    """A plain ``str`` is text; a ``Path``, PIL image, array, bytes or data URI is an image."""
    if isinstance(item, (TextPart, ImagePart)):
        return item
    if isinstance(item, str) and not item.startswith("data:"):
        return TextPart(text=item)
    if isinstance(item, dict):
        kind = item.get("type")
        if kind == "text":
            return TextPart(**item)
        if kind == "image":
            return ImagePart(**item)
        raise ValueError(f"content part needs type 'text' or 'image', got {kind!r}")
    if isinstance(item, (Path, Image.Image, np.ndarray, bytes, bytearray, str)):
        return ImagePart(image=cast(Any, item))
    raise ValueError(f"cannot use {type(item).__name__} as message content")


class Message(BaseModel):
    """One chat turn: text and any number of images, interleaved in order."""

    model_config = ConfigDict(frozen=True)
    role: Literal["system", "user", "assistant"]
    content: list[ContentPart]

    @field_validator("content", mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        if isinstance(value, (str, bytes, bytearray, TextPart, ImagePart)) or not isinstance(value, Sequence):
            value = [value]
        return [_as_part(v) for v in value]

    @classmethod
    def user(cls, *parts: Any) -> Message:
        """``Message.user("Compare", Path("a.png"), "with", Path("b.png"))``.

        A plain ``str`` is text; pass images as ``Path``, PIL, numpy, bytes or data URI.
        """
        return cls(role="user", content=list(parts))

    @classmethod
    def system(cls, text: str) -> Message:
        return cls(role="system", content=[TextPart(text=text)])

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls(role="assistant", content=[TextPart(text=text)])

    @property
    def images(self) -> list[Image.Image]:
        return [p.image for p in self.content if isinstance(p, ImagePart)]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, TextPart))


class GenerationOptions(BaseModel):
    """Decoding settings. Temperature 0 means greedy decoding (the default: reproducible)."""

    model_config = ConfigDict(frozen=True)
    max_new_tokens: int = Field(default=64, ge=1, le=32768)
    temperature: float = Field(default=0.0, ge=0.0, le=10.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list)
    seed: int | None = None


class VLMRequest(BaseModel):
    """A chat conversation with images, how to decode, and the per-call token budget."""

    model_config = ConfigDict(frozen=True)
    messages: list[Message] = Field(min_length=1)
    options: GenerationOptions = Field(default_factory=GenerationOptions)
    budget: TokenBudget | None = None

    @model_validator(mode="after")
    def _last_turn_not_assistant(self) -> VLMRequest:
        if self.messages[-1].role == "assistant":
            raise ValueError("the last message must be from the user or system, not the assistant")
        return self

    @classmethod
    def from_prompt(
        cls,
        text: str,
        images: Sequence[Any] = (),
        *,
        system: str | None = None,
        budget: TokenBudget | None = None,
        **options: Any,
    ) -> VLMRequest:
        """One user turn: the images first, then the text (the layout most VLMs were trained on)."""
        messages = [Message.system(system)] if system else []
        parts: list[Any] = [ImagePart(image=img) for img in images]
        messages.append(Message(role="user", content=[*parts, TextPart(text=text)]))
        return cls(messages=messages, options=GenerationOptions(**options), budget=budget)

    @property
    def images(self) -> list[Image.Image]:
        return [img for m in self.messages for img in m.images]

    def with_images(self, images: Sequence[Image.Image]) -> VLMRequest:
        """The same request with its images replaced in order (used for budget resizing)."""
        it = iter(images)
        messages = [
            m.model_copy(
                update={
                    "content": [
                        ImagePart.model_construct(image=next(it)) if isinstance(p, ImagePart) else p
                        for p in m.content
                    ]
                }
            )
            for m in self.messages
        ]
        return self.model_copy(update={"messages": messages})


class _CallInfo(BaseModel):
    usage: TokenUsage = Field(default_factory=TokenUsage)
    latency_s: float = 0.0
    model_id: str = ""


class VLMResult(_CallInfo):
    """The text a model generated, and what it cost."""

    text: str
    finish_reason: str | None = None
    token_logprobs: list[float] | None = None
    """The natural-log probability the model gave each generated token it kept, in order (the
    end-of-sequence token included when decoding stopped on it). None when the backend could not read them
    (e.g. a server that returns no log-probabilities). A local model's are from its own distribution (raw
    logits, not the temperature / top-p one a sampler drew from); a server's are what it reports."""

    @property
    def confidence(self) -> float | None:
        """The length-normalised sequence probability, ``exp(mean(token_logprobs))``: the geometric mean of
        the kept tokens' probabilities (None without log-probabilities).

        Length-normalised because a longer answer is not less certain per token: the raw product of token
        probabilities falls with every token, so it would rank any short answer above a long one it is
        equally sure of. Normalising by length is standard in the selective generation literature (e.g.
        Malinin & Gales 2021, "Uncertainty Estimation in Autoregressive Structured Prediction").
        """
        if not self.token_logprobs:
            return None
        return math.exp(sum(self.token_logprobs) / len(self.token_logprobs))


class ScoreResult(_CallInfo):
    """Log-probability of each candidate answer, summed over its tokens."""

    options: list[str]
    logprobs: list[float]

    @property
    def probabilities(self) -> list[float]:
        """Softmax over the options: the model's belief restricted to these answers."""
        top = max(self.logprobs)
        weights = [math.exp(lp - top) for lp in self.logprobs]
        total = sum(weights)
        return [w / total for w in weights]

    @property
    def best(self) -> str:
        return self.options[int(np.argmax(self.logprobs))]


def yes_share(logprob_yes: float, logprob_no: float) -> float:
    """P(Yes) / (P(Yes) + P(No)) from two log-probabilities, without overflow for any gap."""
    gap = logprob_no - logprob_yes
    if gap > 0:
        z = math.exp(-gap)
        return z / (1.0 + z)
    return 1.0 / (1.0 + math.exp(gap))


class YesNoResult(_CallInfo):
    """P(Yes) / (P(Yes) + P(No)) from the next-token distribution, with the raw log-probs."""

    p_yes: float = Field(ge=0.0, le=1.0)
    logprob_yes: float
    logprob_no: float

    @classmethod
    def from_logprobs(
        cls, logprob_yes: float, logprob_no: float, *, usage: TokenUsage, latency_s: float, model_id: str
    ) -> YesNoResult:
        return cls(
            p_yes=yes_share(logprob_yes, logprob_no),
            logprob_yes=logprob_yes,
            logprob_no=logprob_no,
            usage=usage,
            latency_s=latency_s,
            model_id=model_id,
        )

    @property
    def confidence(self) -> float:
        """ZoomEye's confidence c = 2 * (P(Yes) - 0.5), in [-1, 1]."""
        return 2.0 * (self.p_yes - 0.5)

    def __float__(self) -> float:
        return self.p_yes


class RelevanceMap(BaseModel):
    """How strongly the model attends to each part of a view for a question, over a grid of cells.

    ``grid[r, c]`` is the cell in row ``r``, column ``c``; ``region`` is the part of the view the grid covers,
    as fractions ``(x0, y0, x1, y1)`` of its width and height (a centre-cropping processor shows the model
    only part of the image).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    grid: np.ndarray
    region: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    usage: TokenUsage = Field(default_factory=TokenUsage)
