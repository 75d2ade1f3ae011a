"""Which agents answer a request's memory namespace (``foveate serve`` with an insight memory).

Each namespace has its own agents, each with the memory opened in that namespace, so that one user's
recall, runs and feedback never reach another's. The gate (``foveate.server.app``) decides a request's
namespace from its API key (or a trusted header), never from the request body or the prompt. The server's
own namespace is answered by the agents it started with; any other gets its agents made on its first
request and kept while the server runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from foveate.agent import Agent

__all__ = ["AgentsByNamespace", "TooManyNamespaces"]


class TooManyNamespaces(Exception):
    """A namespace past the server's limit asked for its agents (each holds database connections)."""


class AgentsByNamespace:
    """``agents`` for namespace ``home``; for another, ``make(namespace)`` once (None: ``agents`` answer
    every namespace, as on a server with no memory, where there is nothing to keep apart)."""

    def __init__(
        self,
        home: str,
        agents: Mapping[str, Agent],
        make: Callable[[str], Mapping[str, Agent]] | None = None,
        limit: int | None = None,
    ) -> None:
        self.home, self.models, self.make, self.limit = home, dict(agents), make, limit
        self._made: dict[str, dict[str, Agent]] = {}
        self._lock = threading.Lock()  # two first requests of one namespace make its agents once

    def agents(self, namespace: str) -> Mapping[str, Agent]:
        """The namespace's agents (model name -> agent); made on first use, in the caller's thread."""
        if namespace == self.home or self.make is None:
            return self.models
        with self._lock:
            if namespace not in self._made:
                if self.limit is not None and len(self._made) + 1 >= self.limit:  # the home one counts
                    raise TooManyNamespaces(
                        f"this server holds agents for {self.limit} namespaces, its limit (--max-namespaces)"
                    )
                self._made[namespace] = dict(self.make(namespace))
            return self._made[namespace]

    def agent(self, namespace: str, model: str) -> Agent:
        return self.agents(namespace)[model]
