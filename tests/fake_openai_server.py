"""A stand-in for an OpenAI-compatible server (vLLM, llama.cpp), for tests of the client side: it answers
every chat completion with fixed text, token log-probabilities and usage. Shared by the backend's tests and
the documentation's snippets that talk to a server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeServer", "serving"]


class FakeServer(ThreadingHTTPServer):
    """A chat-completions server answering every request with ``text``, ``token_logprobs`` when asked for
    them (None: no ``logprobs`` field at all; with ``top_logprobs``, the first position lists
    ``top_tokens``) and fixed usage; ``refuse_logprobs``: HTTP 400 naming the
    field to any request asking for it, as some servers do. ``bodies`` records what each request sent."""

    def __init__(
        self,
        text: str,
        token_logprobs: list[float] | None,
        *,
        refuse_logprobs: bool = False,
        top_tokens: list[str] | None = None,
    ) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.text, self.token_logprobs, self.refuse_logprobs = text, token_logprobs, refuse_logprobs
        # the first position's alternatives, most likely first, for a request with top_logprobs > 1
        self.top_tokens = top_tokens or []
        self.bodies: list[dict[str, Any]] = []
        self.usage = {"prompt_tokens": 40, "completion_tokens": 4, "total_tokens": 44}
        self.window: int | None = None  # set: refuse longer prompts (in bytes) with vLLM's words

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.window is not None and len(json.dumps(body["messages"])) > self.window:
            said = (
                f"This model's maximum context length is {self.window} tokens. However, you requested "
                f"{len(json.dumps(body['messages']))} tokens in the messages. Please reduce the length."
            )
            return 400, {"error": {"message": said, "type": "BadRequestError", "code": 400}}
        if self.refuse_logprobs and "logprobs" in body:
            return 400, {"error": {"message": "logprobs is not supported with this model", "type": "invalid"}}
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": self.text},
            "finish_reason": "stop",
        }
        if self.token_logprobs is not None and body.get("logprobs"):
            entries = [
                {"token": f"t{i}", "logprob": lp, "bytes": None, "top_logprobs": []}
                for i, lp in enumerate(self.token_logprobs)
            ]
            if entries and int(body.get("top_logprobs") or 0) > 1:
                alternatives = self.top_tokens[: int(body["top_logprobs"])]
                entries[0]["top_logprobs"] = [
                    {"token": token, "logprob": -0.4 - 0.5 * rank, "bytes": None}
                    for rank, token in enumerate(alternatives)
                ]
            choice["logprobs"] = {"content": entries}
        reply = {"id": "fake", "object": "chat.completion", "created": 0, "model": body["model"]}
        return 200, {**reply, "choices": [choice], "usage": self.usage}


class _Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        status, reply = self.server.reply(body)
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def serving(fake: FakeServer) -> Iterator[FakeServer]:
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.shutdown()
        fake.server_close()
        thread.join(timeout=10)
