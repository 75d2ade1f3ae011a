"""A live ASGI application (``foveate serve``'s, from ``foveate.server.create_app``) on a free port of
127.0.0.1, served by uvicorn in a thread of the caller's process: for tests and benchmarks that talk to it
over HTTP as a client would. uvicorn comes with the ``serve`` extra."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["live"]


@contextmanager
def live(app: Any, *, start_timeout: float = 30.0) -> Iterator[str]:
    """The server's ``/v1`` base URL while the block runs; the server stops after it. A server that has
    not started within ``start_timeout`` seconds (or whose thread died) is a ``RuntimeError``."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"the server on 127.0.0.1:{port} did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
