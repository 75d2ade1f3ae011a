"""The search's budget meter: probes, forward passes and tokens against their caps, room kept for the answer.

Every strategy spends through a ``SearchContext`` that asks the meter first (``check``), so no cap is ever
overrun: a call that could pass one raises ``SearchStopped`` before it runs, and the agent answers from
the best node found so far.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from foveate.vlm.budget import TokenLedger
from foveate.vlm.types import YesNoResult
from foveate.zoom.config import Visit

__all__ = ["Meter", "SearchStopped"]


class SearchStopped(Exception):
    """The next call would overrun a cap; the search ends and the agent answers from what it has."""


@dataclass
class Meter:
    """Counts probes and forward passes against the caps; keeps room for the final answer."""

    max_probes: int | None
    max_passes: int | None
    ledger: TokenLedger
    probes: int = 0
    passes: int = 0
    reserve: int = 0
    """Tokens kept for the final answer."""
    per_probe: int = 0
    """Upper estimate of one probe's tokens (raised to the most a probe really cost)."""
    visits: list[Visit] = field(default_factory=list)
    watch: Callable[[int, int, Sequence[Visit]], None] | None = None
    """Told (probes so far, tokens spent so far, views recorded since it was last told) after each probing
    call and each view recorded: live progress for a display, which can draw each view as it comes."""

    def check(self, probes: int, passes: int) -> None:
        """Raise ``SearchStopped`` unless ``probes`` more probes in ``passes`` more passes fit every cap."""
        if self.max_probes is not None and self.probes + probes > self.max_probes:
            raise SearchStopped(f"probe cap {self.max_probes} reached")
        if self.max_passes is not None and self.passes + passes > self.max_passes - 1:  # 1 kept to answer
            raise SearchStopped(f"forward-pass cap {self.max_passes} reached")
        remaining = self.ledger.remaining
        if remaining is not None and remaining - self.reserve < max(1, probes * self.per_probe):
            raise SearchStopped(f"token budget {self.ledger.limit} reached (the rest is kept for the answer)")

    def record(self, results: Sequence[YesNoResult], probes: int) -> None:
        for r in results:
            self.per_probe = max(self.per_probe, r.usage.visual_tokens + r.usage.text_tokens)
        self.count(probes, sum(r.usage.forward_passes for r in results))

    def count(self, probes: int, passes: int) -> None:
        """Probes and passes spent (checked before with ``check``), said to ``watch``."""
        self.probes += probes
        self.passes += passes
        self._tell(())

    def visited(self, visit: Visit) -> None:
        """A view the search looked at, recorded in order and said to ``watch``."""
        self.visits.append(visit)
        self._tell((visit,))

    def _tell(self, views: Sequence[Visit]) -> None:
        if self.watch is not None:
            self.watch(self.probes, self.ledger.spent.total, views)
