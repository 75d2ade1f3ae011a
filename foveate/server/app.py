"""The FastAPI application of ``foveate serve``: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Each workflow is a model (``foveate-full``, ``foveate-zoom``...), answered by its own ``Agent``; the agents
share one VLM. Every refusal is an OpenAI-style JSON error (``{"error": {"message", "type", "code"}}``) with a
4xx status that says whose fault it is: 401 a missing key, 400 a request foveate cannot answer, 404 an
unknown model, 413 a body or image past its limit, 429 more questions than the server answers at once.
Answers run in worker threads (``Agent.aask``), so requests are answered concurrently; ``stream: true``
sends the run's progress as server-sent events (``streaming``).
"""

from __future__ import annotations

import asyncio
import hmac
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from foveate.errors import FoveateError, ImageTooLargeError
from foveate.imaging import load_image
from foveate.server.limits import ServerLimits
from foveate.server.protocol import ChatRequest, ChatResponse, Choice, FoveateReply, ImagePart, TextPart
from foveate.server.streaming import sse_chunks
from foveate.vlm.budget import TokenBudget

if TYPE_CHECKING:
    from PIL import Image

    from foveate.agent import Agent, Answer

__all__ = ["create_app"]


class _Refused(Exception):
    """A request refused with ``status``; ``code`` is the machine-readable reason."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _error(status: int, message: str, code: str) -> JSONResponse:
    kind = "authentication_error" if status == 401 else "invalid_request_error"
    return JSONResponse({"error": {"message": message, "type": kind, "code": code}}, status_code=status)


def create_app(agents: Mapping[str, Agent], limits: ServerLimits | None = None) -> FastAPI:
    """The application answering with ``agents`` (model name -> agent) under ``limits``."""
    limits = limits or ServerLimits()
    app = FastAPI(title="foveate", docs_url=None, redoc_url=None)
    in_flight = asyncio.Semaphore(limits.max_concurrency)

    @app.middleware("http")
    async def _gate(request: Request, call_next: Any) -> Any:
        if limits.api_key is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {limits.api_key}".encode()):
                return _error(
                    401, "a valid API key is needed: Authorization: Bearer <key>", "invalid_api_key"
                )
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limits.max_request_bytes:
            return _error(
                413,
                f"the request is {int(length):,} bytes, past this server's limit of "
                f"{limits.max_request_bytes:,}",
                "request_too_large",
            )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}", "invalid_request")

    @app.exception_handler(_Refused)
    async def _refused(request: Request, exc: _Refused) -> JSONResponse:
        return _error(exc.status, str(exc), exc.code)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "foveate"} for name in agents],
        }

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest) -> Any:
        agent = agents.get(body.model)
        if agent is None:
            raise _Refused(
                404, f"no model {body.model!r}; this server has {', '.join(agents)}", "model_not_found"
            )
        question, image = _question(body, limits)
        budget = _budget(agent, body.foveate.max_total_tokens, limits)
        if in_flight.locked():
            raise _Refused(
                429, f"this server answers {limits.max_concurrency} questions at once; retry shortly", "busy"
            )
        if body.stream:

            async def held() -> AsyncIterator[str]:
                async with in_flight:  # held until the last chunk is sent
                    chunks = sse_chunks(
                        agent, body.model, question, image, body.foveate.options, budget, _reply_dict
                    )
                    async for line in chunks:
                        yield line

            return StreamingResponse(held(), media_type="text/event-stream")
        async with in_flight:
            try:
                answer = await agent.aask(question, image=image, options=body.foveate.options, budget=budget)
            except FoveateError as exc:
                raise _Refused(400, str(exc), "cannot_answer") from None
        return _reply(body.model, answer).model_dump()

    return app


def _question(body: ChatRequest, limits: ServerLimits) -> tuple[str, Image.Image]:
    """The last user message's text and its one image."""
    user = next((m for m in reversed(body.messages) if m.role == "user"), None)
    if user is None or user.content is None:
        raise _Refused(400, "no user message: put the question and the image in one", "no_question")
    parts = [TextPart(type="text", text=user.content)] if isinstance(user.content, str) else user.content
    text = " ".join(p.text for p in parts if isinstance(p, TextPart)).strip()
    images = [p.image_url.url for p in parts if isinstance(p, ImagePart)]
    if not text:
        raise _Refused(400, "the user message has no question text", "no_question")
    if len(text) > limits.max_question_chars:
        raise _Refused(
            400,
            f"the question is {len(text):,} characters, past this server's limit of "
            f"{limits.max_question_chars:,}",
            "question_too_long",
        )
    if len(images) != 1:
        raise _Refused(
            400, f"give one image (an image_url part); this message has {len(images)}", "one_image"
        )
    url = images[0]
    if not url.startswith("data:"):
        raise _Refused(400, "foveate does not download images: send the image as a data: URI", "remote_image")
    try:
        return text, load_image(url, max_pixels=limits.max_pixels)
    except ImageTooLargeError as exc:
        raise _Refused(413, str(exc), "image_too_large") from None
    except FoveateError as exc:
        raise _Refused(400, str(exc), "bad_image") from None


def _budget(agent: Agent, asked: int | None, limits: ServerLimits) -> TokenBudget:
    """The agent's budget, with the question's cap the smallest of the request's, the server's and the
    agent's own: a request can lower it, never raise it."""
    caps = [c for c in (asked, limits.max_total_tokens, agent.budget.max_total_tokens) if c is not None]
    try:
        return agent.budget.model_copy(update={"max_total_tokens": min(caps) if caps else None})
    except ValidationError as exc:  # pragma: no cover - the fields are validated on the way in
        raise _Refused(400, str(exc), "bad_budget") from None


def _reply_dict(model: str, answer: Answer) -> dict[str, Any]:
    return _reply(model, answer).model_dump()


def _reply(model: str, answer: Answer) -> ChatResponse:
    if answer.abstained:
        said = f"I abstain: {answer.reason}"
    elif answer.status == "waiting":
        said = "This question waits for a person's answer (the workflow asks a human when unsure)."
    else:
        said = str(answer.text)
    usage = answer.tokens
    prompt = usage.visual_tokens + usage.text_tokens
    return ChatResponse(
        id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message={"role": "assistant", "content": said})],
        usage={
            "prompt_tokens": prompt,
            "completion_tokens": usage.generated_tokens,
            "total_tokens": prompt + usage.generated_tokens,
        },
        foveate=FoveateReply(
            run_id=answer.run_id,
            status=answer.status,
            abstained=answer.abstained,
            reason=answer.reason,
            answer=answer.text,
            option=answer.option,
            confidence=answer.confidence,
            prediction_set=answer.prediction_set,
            crops=answer.crops,
            answer_box=answer.answer_box,
            probes=answer.probes,
            tokens={
                "visual": usage.visual_tokens,
                "text": usage.text_tokens,
                "generated": usage.generated_tokens,
            },
            trace=answer.trace,
        ),
    )
