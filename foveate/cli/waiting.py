"""What ``foveate run`` shows while it waits on a model: a spinner with the time since the last node finished
(on a terminal), and a line on stderr for each retry of a server request.

A server that accepts and never answers used to mean minutes of silence (60 s x 3 tries) before "timed
out". The retries are the OpenAI client's own; it logs each one (``openai._base_client``, at INFO, "Retrying
request in 0.4 seconds (retry 1 of 2)") and this module turns that record into a line naming the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from foveate.cli.common import err_console

__all__ = ["Waiting", "waiting_on_model"]

_CLIENT_LOGGER = "openai._base_client"


class _RetryNotes(logging.Handler):
    """Says each retry of a server request on stderr; hands every other record on to the root logger's
    handlers, as propagation would have (propagation is off while this handler is attached, or the CLI's
    own log handler would print the client's INFO line as well)."""

    def __init__(self, server: str, timeout: float) -> None:
        super().__init__(logging.INFO)
        self.server, self.timeout = server, timeout

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Retrying request") and len(record.args or ()) == 3:
            delay, attempt, of = cast("tuple[float, int, int]", record.args)
            err_console.print(
                f"[yellow]waiting[/]: the model server at {self.server} has not answered; retry {attempt} "
                f"of {of} in {delay:.1f} s (each try waits up to {self.timeout:g} s)",
                highlight=False,
                soft_wrap=True,
            )
            return
        root = logging.getLogger()
        if record.levelno >= root.getEffectiveLevel():
            root.handle(record)


class Waiting:
    """The spinner's handle: ``node_done`` restarts its clock after each node."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress
        self._task = progress.add_task("waiting on the model", total=None) if progress is not None else None

    def node_done(self, node: str) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.remove_task(self._task)
        self._task = self._progress.add_task(f"{node} done; waiting on the model", total=None)

    def working(self, node: str, probes: int, tokens: int) -> None:
        """A node at work says how far it is (a zoom search, after each probe)."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=f"{node}: {probes} probes, {tokens} tokens so far")


@contextmanager
def waiting_on_model(server: str | None, timeout: float) -> Iterator[Waiting]:
    """While the block runs: a spinner on a terminal's stderr, and, with a ``server``, a line per retry."""
    handler: _RetryNotes | None = None
    client_log = logging.getLogger(_CLIENT_LOGGER)
    level, propagate = client_log.level, client_log.propagate
    if server is not None:
        handler = _RetryNotes(server, timeout)
        client_log.addHandler(handler)
        client_log.setLevel(min(logging.INFO, client_log.getEffectiveLevel()))
        client_log.propagate = False
    progress = None
    if err_console.is_terminal:
        progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        )
    try:
        if progress is None:
            yield Waiting(None)
        else:
            with progress:
                yield Waiting(progress)
    finally:
        if handler is not None:
            client_log.removeHandler(handler)
            client_log.setLevel(level)
            client_log.propagate = propagate
