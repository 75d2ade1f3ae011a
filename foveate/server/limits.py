"""What one request may ask of ``foveate serve``, and the server's own caps that no request can raise."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from foveate.imaging import DEFAULT_MAX_PIXELS

__all__ = ["ServerLimits"]


class ServerLimits(BaseModel):
    """The server's limits; each refusal is a 4xx JSON error naming the limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    api_key: str | None = Field(default=None, repr=False)
    """When set, every request needs ``Authorization: Bearer <key>`` (401 without it); its questions use
    the namespace ``namespace``."""
    api_keys: dict[str, str] = Field(default_factory=dict, repr=False)
    """More keys, each with the memory namespace its questions use (key -> namespace): each user's
    insights, runs and feedback stay in their own namespace. Any of these keys (or ``api_key``) opens."""
    namespace: str = "default"
    """The namespace of requests that ``api_key`` (or no key) opens."""
    namespace_header: bool = False
    """Let the ``X-Foveate-Namespace`` header choose the namespace (for a server behind a proxy that
    authenticates users and sets it). Off: that header is refused, so a namespace is never chosen by what a
    client merely says."""
    max_request_bytes: int = Field(default=20_000_000, ge=1_000)
    """The largest request body (413 beyond it): an image as a data URI is about 4/3 of its file."""
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS // 2, ge=1)
    """The most pixels an image may decode to (413 beyond it): 50 million (an 8K x 6K photograph), half of
    what ``load_image`` allows, because a small PNG can decode to this many pixels' worth of memory."""
    max_question_chars: int = Field(default=4_000, ge=1)
    """The longest question, in characters (400 beyond it)."""
    max_concurrency: int = Field(default=8, ge=1)
    """Questions answered at once; one more gets 429 (retry later) rather than waiting without a word."""
    max_namespaces: int = Field(default=64, ge=1)
    """Memory namespaces this server keeps agents for (each holds a memory engine and checkpoint
    connections); a request from one more gets 503 rather than exhausting the database's connections."""
    local_files: Path | None = None
    """A folder whose images requests may name by ``file://`` URL (the server reads them; none outside it,
    symbolic links resolved first). None: only ``data:`` URIs. Remote URLs are never fetched."""
    max_total_tokens: int | None = Field(default=None, ge=1)
    """The server's cap on all tokens one question spends. A request may ask for less, never for more."""

    @model_validator(mode="after")
    def _one_way_to_choose_namespaces(self) -> ServerLimits:
        # with both, a user's own key and a header naming another user would open that user's memory
        if self.namespace_header and self.api_keys:
            raise ValueError(
                "namespaces are chosen by key (--api-keys) or by a proxy's header (--namespace-header), not "
                "both: a client with a key could name another user's namespace in the header"
            )
        return self

    @property
    def needs_key(self) -> bool:
        return self.api_key is not None or bool(self.api_keys)
