"""The OpenAI chat-completions format as ``foveate serve`` reads and writes it, with one extension object.

A request is OpenAI's: ``model`` (a workflow: ``foveate-full``, ``foveate-zoom``...), ``messages`` whose last
user message holds the question as text parts and one image as an ``image_url`` part (a ``data:`` URI, or a
``file://`` URL inside the folder a server started with ``--local-files`` reads; remote URLs are refused:
foveate never downloads). foveate's own fields go in ``foveate``
(``FoveateRequest``): the options to choose from, a smaller token budget. The reply is OpenAI's, with the
answer (or the abstention, said in words) as the message, and everything else in ``foveate``
(``FoveateReply``): why it abstained, the prediction set, the crops it looked at, the tokens, the run id.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ChatRequest",
    "ChatResponse",
    "FeedbackReply",
    "FeedbackRequest",
    "FoveateReply",
    "FoveateRequest",
    "ImagePart",
    "Message",
    "TextPart",
]


class TextPart(BaseModel):
    """A text part of a message."""

    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    """Where the image is: a ``data:`` URI (OpenAI's ``detail`` is accepted and not used)."""

    url: str
    detail: str | None = None


class ImagePart(BaseModel):
    """An image part of a message."""

    type: Literal["image_url"]
    image_url: ImageURL


class Message(BaseModel):
    """One chat message; foveate reads the last user message and ignores the rest of the history."""

    model_config = ConfigDict(extra="allow")
    role: str
    """Only the last ``user`` message is read; the others (any role) are history foveate does not use."""
    content: str | list[TextPart | ImagePart | dict[str, Any]] | None = None


class FoveateRequest(BaseModel):
    """foveate's own request fields, in the request's ``foveate`` object."""

    model_config = ConfigDict(extra="forbid")
    options: list[str] | None = None
    """Answer options: each is scored against the image and the best one is the answer (None: free text)."""
    max_total_tokens: int | None = Field(default=None, ge=1, le=10**12)
    """A budget for this question: capped at the server's own (a request can lower it, never raise it)."""


class ChatRequest(BaseModel):
    """A chat-completions request (fields foveate does not use, such as ``temperature``, are accepted)."""

    model_config = ConfigDict(extra="allow")
    model: str
    """Which workflow answers: ``foveate-<name>`` as ``GET /v1/models`` lists them."""
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    """OpenAI's: ``{"include_usage": true}`` adds a last chunk with the tokens spent."""
    foveate: FoveateRequest = Field(default_factory=FoveateRequest)


class FoveateReply(BaseModel):
    """What foveate adds to the reply, in its ``foveate`` object."""

    run_id: str
    """The run's id (its trace can be read back)."""
    status: Literal["done", "waiting", "incomplete"]
    abstained: bool
    """Whether the workflow withheld its answer as too risky (the message then says so in words)."""
    reason: str
    """Why it abstained ("" when it answered)."""
    answer: str | None
    """The answer (None when it abstained)."""
    option: str | None
    """The option the model chose, also when the gate withheld it."""
    confidence: float | None
    """That option's probability, or a free-text answer's sequence probability."""
    prediction_set: list[str]
    """The conformal prediction set (LAC / APS calibrations)."""
    crops: list[list[int]]
    """The crops the search settled on, as [left, top, right, bottom] in the image's pixels."""
    answer_box: list[int] | None
    """The crop the answer came from (None: the whole image)."""
    probes: int
    """Probes the zoom search spent."""
    tokens: dict[str, int]
    """Tokens spent: visual, text, generated."""
    trace: list[str]
    """What each node did, in order."""


class Choice(BaseModel):
    """The one choice of a reply."""

    index: int = 0
    message: dict[str, Any]
    finish_reason: Literal["stop", "length"] = "stop"


class ChatResponse(BaseModel):
    """A chat-completions reply, with foveate's object."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: dict[str, int]
    foveate: FoveateReply


class FeedbackRequest(BaseModel):
    """``POST /v1/foveate/feedback``: how an answered run went (``foveate feedback``, over HTTP).

    Give ``correct``, or the right ``answer`` (then correctness follows from it), and a ``note`` if you like.
    """

    model_config = ConfigDict(extra="forbid")
    model: str
    """The model (workflow) that answered."""
    run_id: str = Field(min_length=1, max_length=200)
    """The run, as ``foveate.run_id`` of the reply."""
    correct: bool | None = None
    """Whether the answer was right."""
    answer: str | None = Field(default=None, max_length=10_000)
    """The right answer."""
    note: str | None = Field(default=None, max_length=10_000)
    """Kept with the run in the insight memory."""


class FeedbackReply(BaseModel):
    """What the feedback changed."""

    run_id: str
    correct: bool | None
    """The outcome as recorded (None: a note only)."""
    memory_run: int | None
    """The run's record in the insight memory (None: the server keeps no memory)."""
    coverage: dict[str, Any] | None
    """The abstention gate's coverage monitor after this feedback (None: no gate, or nothing to count)."""
    message: str
    """The same, in a sentence."""
