"""``stream: true``: a run's progress as server-sent events, in OpenAI's chunk format.

Each chunk is a ``chat.completion.chunk`` whose ``foveate`` object says what happened: ``{"node": NAME,
"messages": [...]}`` when a node finishes (a search's node adds ``"visits"``, every view it probed), and
``{"node": "zoom", "probes": N, "tokens": T, "views": [...]}`` after each probe of a search and each view
it records (a view: ``box`` [left, top, right, bottom] in the image's pixels, ``depth``, and the
confidences it was ranked by, as in ``foveate.zoom.Visit``). Their ``delta`` is empty, so a plain OpenAI
client shows nothing until the answer: the last chunk with content carries the answer (or "I abstain:
REASON") and the full ``FoveateReply``, then a chunk with ``finish_reason``, then (with
``stream_options.include_usage``) one with ``usage``, then ``data: [DONE]``.

The run goes on a worker thread (``Agent.stream``), started when the request is accepted; its events cross
to the event loop through a queue. A client that goes away cancels the run at its next probe or node (the
worker checks a flag), and the server's slot is given back only when the worker has ended, so abandoned
streams cannot pile runs onto the model beyond ``max_concurrency``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PIL import Image

    from foveate.agent import Agent, Answer
    from foveate.graphs.workflow import SearchProgress
    from foveate.vlm.budget import TokenBudget

__all__ = ["StreamedRun"]

_END = object()


class _Cancelled(Exception):
    """The client went away: the run stops at its next probe or node."""


class StreamedRun:
    """One streamed run: its worker thread (started at once) and the chunks it produces."""

    def __init__(
        self,
        agent: Agent,
        model: str,
        question: str,
        image: Image.Image,
        options: list[str] | None,
        budget: TokenBudget,
        *,
        reply: Callable[[str, Answer], dict[str, Any]],
        done: Callable[[], None],
        include_usage: bool = False,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancelled = threading.Event()
        self.model, self.reply, self.include_usage = model, reply, include_usage
        self.chunk_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        args = (agent, question, image, options, budget, done)
        threading.Thread(target=self._work, args=args, daemon=True, name="foveate-serve-stream").start()

    def _put(self, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # a closed event loop (the server stopping): nobody reads
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _watch(self, progress: SearchProgress) -> None:
        if self.cancelled.is_set():
            raise _Cancelled("the client went away")
        views = [v.model_dump(mode="json", exclude_none=True) for v in progress.views]
        self._put(
            {"node": progress.node, "probes": progress.probes, "tokens": progress.tokens, "views": views}
        )

    def _work(
        self,
        agent: Agent,
        question: str,
        image: Image.Image,
        options: list[str] | None,
        budget: TokenBudget,
        done: Callable[[], None],
    ) -> None:
        try:
            run_id = None
            events = agent.stream(
                question,
                image=image,
                options=options,
                budget=budget,
                watch=self._watch,
            )
            for event in events:
                if self.cancelled.is_set():
                    raise _Cancelled("the client went away")
                run_id = event.run_id
                said: dict[str, Any] = {"node": event.node, "messages": event.messages}
                if "visits" in event.update:
                    said["visits"] = event.update["visits"]
                self._put(said)
            if run_id is None:
                raise RuntimeError("the workflow ran no node")
            self._put(agent.answer(run_id))
        except _Cancelled:
            pass
        except Exception as exc:  # said to the client as the stream's last chunk
            self._put(exc)
        finally:
            self._put(_END)
            done()

    def _chunk(self, delta: dict[str, Any], extra: dict[str, Any], finish: str | None) -> str:
        body: dict[str, Any] = {
            "id": self.chunk_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        if extra:
            body["foveate"] = extra
        return f"data: {json.dumps(body)}\n\n"

    async def chunks(self) -> AsyncIterator[str]:
        """The SSE lines; closing this early (a client gone) cancels the run."""
        try:
            yield self._chunk({"role": "assistant", "content": ""}, {}, None)
            while (item := await self.queue.get()) is not _END:
                if isinstance(item, dict):
                    yield self._chunk({}, item, None)
                elif isinstance(item, Exception):
                    error = {"message": str(item), "type": "server_error", "code": "run_failed"}
                    yield f"data: {json.dumps({'error': error})}\n\n"
                else:
                    full = self.reply(self.model, item)
                    choice = full["choices"][0]
                    yield self._chunk({"content": choice["message"]["content"]}, full["foveate"], None)
                    yield self._chunk({}, {}, choice["finish_reason"])
                    if self.include_usage:
                        usage = {**full, "object": "chat.completion.chunk", "choices": []}
                        usage.pop("foveate")
                        yield f"data: {json.dumps(usage)}\n\n"
            yield "data: [DONE]\n\n"
        finally:
            self.cancelled.set()  # a no-op once the run has ended
