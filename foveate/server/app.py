"""The FastAPI application of ``foveate serve``: ``GET /v1/models``, ``POST /v1/chat/completions``,
``POST /v1/foveate/feedback`` (how an answer went: the memory and the coverage monitor learn from it), and
the web page at ``/`` (``page.html``: pick an image, ask, watch the search's views drawn as they are
probed, say whether the answer was right).

Each workflow is a model (``foveate-full``, ``foveate-zoom``...), answered by its own ``Agent``; the agents
share one VLM. Every refusal is an OpenAI-style JSON error (``{"error": {"message", "type", "code"}}``) with a
4xx status that says whose fault it is: 401 a missing key, 400 a request foveate cannot answer, 404 an
unknown model, 413 a body or image past its limit, 429 more questions than the server answers at once.
Answers run in worker threads (``Agent.aask``), so requests are answered concurrently; ``stream: true``
sends the run's progress as server-sent events (``streaming``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import logging
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException

from foveate.errors import FoveateError
from foveate.graphs.state import RunInput
from foveate.memory.namespaces import NamespaceError, check_namespace
from foveate.server.inputs import question_and_image
from foveate.server.limits import ServerLimits
from foveate.server.namespaces import AgentsByNamespace, TooManyNamespaces
from foveate.server.protocol import (
    ChatRequest,
    ChatResponse,
    Choice,
    FeedbackReply,
    FeedbackRequest,
    FoveateReply,
)
from foveate.server.refusals import Refused, error
from foveate.server.streaming import StreamedRun
from foveate.vlm.budget import TokenBudget

if TYPE_CHECKING:
    from foveate.agent import Agent, Answer

__all__ = ["create_app"]

log = logging.getLogger(__name__)

NAMESPACE_HEADER = "x-foveate-namespace"
_NAMESPACE = "foveate_namespace"  # where the gate leaves the request's namespace, in the ASGI scope's state
_PAGE = resources.files("foveate.server").joinpath("page.html").read_text(encoding="utf-8")


class _Gate:
    """What every request passes before the app sees it, in order: the API key (when one is set), then the
    body's size. The body is read here, its bytes counted as they arrive: a chunked body has no
    Content-Length to check, and FastAPI would read it whole, whatever its size, before any limit saw it.
    Past the limit it answers 413 and reads no more."""

    def __init__(self, app: Any, limits: ServerLimits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or (scope["method"] == "GET" and scope["path"] == "/"):
            # the page holds no data and a browser cannot send a key to open it: it asks for the key and
            # sends it with each request it makes
            await self.app(scope, receive, send)
            return
        refused, namespace = self._admit(Headers(scope=scope))
        if refused is not None:
            await refused(scope, receive, send)
            return
        scope.setdefault("state", {})[_NAMESPACE] = namespace
        limit = self.limits.max_request_bytes
        chunks: list[bytes] = []
        seen, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            if seen > limit:
                said = f"the request is past this server's limit of {limit:,} bytes"
                await error(413, said, "request_too_large")(scope, receive, send)
                return
            more = message.get("more_body", False)
        whole, given = b"".join(chunks), False

        async def replay() -> Any:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()  # then whatever comes next (a disconnect)

        await self.app(scope, replay, send)

    def _admit(self, headers: Headers) -> tuple[JSONResponse | None, str]:
        """The refusal of a missing key, a namespace header the server does not take, or a Content-Length
        past the limit (refused without reading the body); else None and the request's memory namespace:
        its key's, or the header's where the server takes it."""
        limits = self.limits
        namespace = limits.namespace
        if limits.needs_key:
            given = headers.get("authorization", "").encode()
            found = None
            for key, space in ((limits.api_key, limits.namespace), *limits.api_keys.items()):
                # every key compared, in constant time each: no early exit tells which one came close
                if key is not None and hmac.compare_digest(given, f"Bearer {key}".encode()):
                    found = space
            if found is None:
                said = "a valid API key is needed: Authorization: Bearer <key>"
                return error(401, said, "invalid_api_key"), namespace
            namespace = found
        named = headers.getlist(NAMESPACE_HEADER)
        if len(named) > 1:  # a proxy that added its header beside the client's: which one is meant?
            return error(400, f"{NAMESPACE_HEADER} given {len(named)} times", "bad_namespace"), namespace
        asked = named[0] if named else None
        if asked is not None:
            if not limits.namespace_header:
                said = (
                    f"this server chooses the memory namespace by API key and does not take the "
                    f"{NAMESPACE_HEADER} header (foveate serve --namespace-header takes it, behind a proxy "
                    "that sets it)"
                )
                return error(400, said, "namespace_header_off"), namespace
            try:
                namespace = check_namespace(asked)
            except NamespaceError as exc:
                return error(400, f"{NAMESPACE_HEADER}: {exc}", "bad_namespace"), namespace
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > limits.max_request_bytes:
            said = (
                f"the request is {int(length):,} bytes, past this server's limit of "
                f"{limits.max_request_bytes:,}"
            )
            return error(413, said, "request_too_large"), namespace
        return None, namespace


def create_app(
    agents: Mapping[str, Agent] | AgentsByNamespace, limits: ServerLimits | None = None
) -> FastAPI:
    """The application answering with ``agents`` (model name -> agent; or an ``AgentsByNamespace``, whose
    agents for each memory namespace answer the requests of that namespace) under ``limits``."""
    limits = limits or ServerLimits()
    spaces = (
        agents
        if isinstance(agents, AgentsByNamespace)
        else AgentsByNamespace(limits.namespace, agents, limit=limits.max_namespaces)
    )
    names = list(spaces.models)
    app = FastAPI(title="foveate", docs_url=None, redoc_url=None)
    in_flight = asyncio.Semaphore(limits.max_concurrency)
    # the answers' threads: as many as questions answered at once (asyncio's default pool has cores + 4)
    pool = ThreadPoolExecutor(max_workers=limits.max_concurrency, thread_name_prefix="foveate-serve")

    app.add_middleware(_Gate, limits=limits)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(400, f"{where}: {first.get('msg', 'invalid request')}", "invalid_request")

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        return error(exc.status, str(exc), exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(
            exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "http_error"
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("a request failed")
        return error(500, f"the server failed answering: {type(exc).__name__}: {exc}", "server_error")

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(_PAGE)

    @app.post("/v1/foveate/feedback")
    async def feedback(body: FeedbackRequest, request: Request) -> dict[str, Any]:
        _known(names, body.model)
        # a slot, as a question takes: feedback may call the model (writing the run's lessons)
        if in_flight.locked():
            raise Refused(
                429, f"this server answers {limits.max_concurrency} questions at once; retry shortly", "busy"
            )
        async with in_flight:
            loop = asyncio.get_running_loop()
            agent = await loop.run_in_executor(pool, _agent_of, spaces, request, body.model)
            said = functools.partial(_feedback, agent, body)
            return (await loop.run_in_executor(pool, said)).model_dump(mode="json")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "foveate"} for name in names],
        }

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request) -> Any:
        _known(names, body.model)
        # a slot first (no await between the check and the take), then the image: a refused request
        # decodes nothing
        if in_flight.locked():
            raise Refused(
                429, f"this server answers {limits.max_concurrency} questions at once; retry shortly", "busy"
            )
        await in_flight.acquire()
        loop = asyncio.get_running_loop()
        handed_on = False
        try:
            agent = await loop.run_in_executor(pool, _agent_of, spaces, request, body.model)
            question, image = await loop.run_in_executor(pool, question_and_image, body, limits)
            budget = _budget(agent, body.foveate.max_total_tokens, limits)
            try:
                RunInput.checked(
                    max_options=agent.max_options,
                    question=question,
                    image=image,
                    options=body.foveate.options,
                )
            except FoveateError as exc:
                raise Refused(400, str(exc), "bad_question") from None
            if body.stream:
                run = StreamedRun(
                    agent,
                    body.model,
                    question,
                    image,
                    body.foveate.options,
                    budget,
                    reply=_reply_dict,
                    done=lambda: _give_back(loop, in_flight),
                    include_usage=bool((body.stream_options or {}).get("include_usage")),
                )
                handed_on = True  # the run's thread gives the slot back when it ends
                return StreamingResponse(run.chunks(), media_type="text/event-stream")
            ask = functools.partial(agent.ask, question, image, body.foveate.options, budget=budget)
            try:
                answer = await loop.run_in_executor(pool, ask)
            except FoveateError as exc:
                raise Refused(400, str(exc), "cannot_answer") from None
            return _reply(body.model, answer).model_dump()
        finally:
            if not handed_on:
                in_flight.release()

    return app


def _known(names: list[str], model: str) -> None:
    if model not in names:
        raise Refused(404, f"no model {model!r}; this server has {', '.join(names)}", "model_not_found")


def _agent_of(spaces: AgentsByNamespace, request: Request, model: str) -> Agent:
    """The agent of the request's namespace (its agents made on its first request)."""
    try:
        return spaces.agent(str(getattr(request.state, _NAMESPACE)), model)
    except TooManyNamespaces as exc:
        raise Refused(503, str(exc), "too_many_namespaces") from None


def _feedback(agent: Agent, body: FeedbackRequest) -> FeedbackReply:
    """``Agent.feedback`` on a run this server answered, and what it recorded."""
    if body.correct is None and body.answer is None and body.note is None:
        raise Refused(400, "say how the run went: correct, the right answer, or a note", "no_feedback")
    try:
        state = agent.workflow.state(body.run_id, own=True)
    except FoveateError:  # another namespace's run is, to this key, not there: the same words
        state = {}
    if not state:
        raise Refused(404, f"no run {body.run_id!r} on this server", "run_not_found")
    try:
        agent.feedback(body.run_id, correct=body.correct, answer=body.answer, note=body.note)
    except FoveateError as exc:
        raise Refused(400, str(exc), "bad_feedback") from None
    memory_run = state.get("run_id")
    stored = agent.memory.get_run(memory_run) if agent.memory is not None and memory_run is not None else None
    if stored is None and agent.memory is not None:  # recorded by this feedback: the run's state says where
        memory_run = agent.workflow.state(body.run_id).get("run_id")
        stored = agent.memory.get_run(memory_run) if memory_run is not None else None
    correct = stored.correct if stored is not None else body.correct
    coverage = agent.monitor.status().model_dump(mode="json") if agent.monitor is not None else None
    verdict = {True: "right", False: "wrong", None: "not judged"}[correct]
    where = (
        f"recorded as memory run {stored.id}" if stored is not None else "noted (this server keeps no memory)"
    )
    return FeedbackReply(
        run_id=body.run_id,
        correct=correct,
        memory_run=stored.id if stored is not None else None,
        coverage=coverage,
        message=f"run {body.run_id}: {verdict}, {where}",
    )


def _give_back(loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore) -> None:
    with contextlib.suppress(RuntimeError):  # a closed loop: the server is gone, and its slots with it
        loop.call_soon_threadsafe(slots.release)


def _budget(agent: Agent, asked: int | None, limits: ServerLimits) -> TokenBudget:
    """The agent's budget, with the question's cap the smallest of the request's, the server's and the
    agent's own: a request can lower it, never raise it."""
    caps = [c for c in (asked, limits.max_total_tokens, agent.budget.max_total_tokens) if c is not None]
    fields = {**agent.budget.model_dump(), "max_total_tokens": min(caps) if caps else None}
    try:
        return TokenBudget.model_validate(fields)
    except ValidationError as exc:
        raise Refused(400, f"foveate.max_total_tokens: {exc.errors()[0]['msg']}", "bad_budget") from None


def _reply_dict(model: str, answer: Answer) -> dict[str, Any]:
    return _reply(model, answer).model_dump()


def _reply(model: str, answer: Answer) -> ChatResponse:
    finish: Literal["stop", "length"] = "stop"
    if answer.abstained:
        said = f"I abstain: {answer.reason}"
    elif answer.status == "waiting":
        said = "This question waits for a person's answer (the workflow asks a human when unsure)."
    elif answer.status == "incomplete" or answer.text is None:
        said, finish = f"The run stopped before an answer (run {answer.run_id}).", "length"
    else:
        said = answer.text
    usage = answer.tokens
    prompt = usage.visual_tokens + usage.text_tokens
    return ChatResponse(
        id=f"chatcmpl-{uuid.uuid4().hex[:24]}",
        created=int(time.time()),
        model=model,
        choices=[Choice(message={"role": "assistant", "content": said}, finish_reason=finish)],
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
