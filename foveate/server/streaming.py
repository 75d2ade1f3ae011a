"""``stream: true``: a run's progress as server-sent events, in OpenAI's chunk format.

Each chunk is a ``chat.completion.chunk`` whose ``foveate`` object says what happened: ``{"node": NAME,
"messages": [...]}`` when a node finishes, ``{"node": "zoom", "probes": N, "tokens": T}`` after each probe of
a search. Their ``delta`` is empty, so a plain OpenAI client shows nothing until the answer: the last chunk
with content carries the answer (or "I abstain: REASON") and the full ``FoveateReply``, then a chunk with
``finish_reason: "stop"``, then ``data: [DONE]``.

The run goes on a worker thread (``Agent.stream``); its events cross to the event loop through a queue.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from foveate.agent import Agent, Answer
    from foveate.vlm.budget import TokenBudget

__all__ = ["sse_chunks"]

_END = object()


def _chunk(
    chunk_id: str, model: str, delta: dict[str, Any], extra: dict[str, Any], finish: str | None
) -> str:
    body = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **({"foveate": extra} if extra else {}),
    }
    return f"data: {json.dumps(body)}\n\n"


async def sse_chunks(
    agent: Agent,
    model: str,
    question: str,
    image: Image.Image,
    options: list[str] | None,
    budget: TokenBudget,
    reply: Callable[[str, Answer], dict[str, Any]],
) -> AsyncIterator[str]:
    """The run's events as SSE ``data:`` lines, then the answer (``reply(model, answer)``'s message and
    ``foveate`` object), then ``[DONE]``. A failure mid-run is a last chunk with an ``error`` object."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    chunk_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            run_id = None
            events = agent.stream(
                question,
                image=image,
                options=options,
                budget=budget,
                watch=lambda p: put({"node": p.node, "probes": p.probes, "tokens": p.tokens}),
            )
            for event in events:
                run_id = event.run_id
                put({"node": event.node, "messages": event.messages})
            put(agent.answer(run_id) if run_id is not None else RuntimeError("the workflow ran no node"))
        except Exception as exc:  # said to the client as the stream's last chunk
            put(exc)
        finally:
            put(_END)

    threading.Thread(target=work, daemon=True, name="foveate-serve-stream").start()
    yield _chunk(chunk_id, model, {"role": "assistant", "content": ""}, {}, None)
    while (item := await queue.get()) is not _END:
        if isinstance(item, dict):
            yield _chunk(chunk_id, model, {}, item, None)
        elif isinstance(item, Exception):
            error = {"message": str(item), "type": "server_error", "code": "run_failed"}
            yield f"data: {json.dumps({'error': error})}\n\n"
        else:
            full = reply(model, item)
            message = full["choices"][0]["message"]["content"]
            yield _chunk(chunk_id, model, {"content": message}, full["foveate"], None)
            yield _chunk(chunk_id, model, {}, {}, "stop")
    yield "data: [DONE]\n\n"
