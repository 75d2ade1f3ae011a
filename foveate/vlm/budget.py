"""Token budgets: what a call spent, caps per image and per question, and the ledger that enforces them.

A ``TokenBudget`` is configuration. A ``TokenLedger`` is the running account of one
question: every VLM call first *holds* the tokens it is about to spend (raising
``BudgetExceeded`` before any model work if they do not fit), then charges what it really
spent. Holding is what makes the check safe when several calls run concurrently.

A hold is meant to be an upper bound. Where a backend cannot know the exact count beforehand (a server
reports usage after the call), a call can still spend more than it held: ``commit`` compares the two,
records the overrun on the ledger (``TokenLedger.overruns``), and from then on a capped ledger refuses every
further call, naming the call that overspent and by how much. The spend is always what was reported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from foveate.errors import BudgetExceeded

log = logging.getLogger(__name__)


class TokenUsage(BaseModel):
    """Tokens one call (or many, summed) really spent.

    ``visual_tokens`` are image-placeholder tokens in the prompt(s), ``text_tokens`` the other
    prompt tokens, ``generated_tokens`` the new tokens decoded; ``forward_passes`` counts
    batched model invocations (a batch of eight probes is one pass).
    """

    visual_tokens: int = 0
    text_tokens: int = 0
    generated_tokens: int = 0
    forward_passes: int = 0

    @property
    def prompt_tokens(self) -> int:
        return self.visual_tokens + self.text_tokens

    @property
    def total(self) -> int:
        return self.visual_tokens + self.text_tokens + self.generated_tokens

    @staticmethod
    def sum(usages: Iterable[TokenUsage]) -> TokenUsage:
        total = TokenUsage()
        for usage in usages:
            total = total + usage
        return total

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            visual_tokens=self.visual_tokens + other.visual_tokens,
            text_tokens=self.text_tokens + other.text_tokens,
            generated_tokens=self.generated_tokens + other.generated_tokens,
            forward_passes=self.forward_passes + other.forward_passes,
        )


MAX_TOKENS = 10**12
"""The largest token cap a budget takes."""


class TokenBudget(BaseModel):
    """Caps on what a question may cost.

    - ``max_visual_tokens_per_image``: every image is resized (keeping its aspect ratio) so
      that the model turns it into at most this many visual tokens.
    - ``max_total_tokens``: visual + text prompt + generated tokens over all calls of one
      question. Generation holds ``max_new_tokens`` up front and gives back what it did not use.
    - ``prune``: training-free visual-token pruning inside a local model (``foveate.vlm.pruning``).
      ``"cls"`` (FasterVLM) keeps, before the language model, the image patches the vision tower's
      [CLS] token attends to most; ``"fastv"`` (FastV) runs the first ``layer`` decoder layers on every
      token, then keeps the visual tokens the last prompt token attended to most in layer ``layer``.
      Resizing caps what the vision tower sees; pruning caps what the language model pays for, which is
      where a prompt that is mostly visual tokens spends its time.
    - ``keep``: the fraction of visual tokens kept, in (0, 1]; ``ceil(keep * N)`` of N (at least one).
      ``keep=1.0`` with a method set runs the pruning code path without dropping anything.
    - ``layer``: FastV's K, the number of decoder layers that see every visual token (>= 1; it must be
      smaller than the model's depth).
    """

    model_config = ConfigDict(frozen=True)
    # at most 10^12: far above any model's context, and within the 64-bit integers checkpoints store (a
    # budget above 2^64 failed deep in the checkpoint serializer)
    max_visual_tokens_per_image: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_total_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    prune: Literal["cls", "fastv"] | None = None
    keep: float = Field(default=1.0, gt=0.0, le=1.0)
    layer: int = Field(default=2, ge=1)


@dataclass(frozen=True)
class Overrun:
    """A call that spent more tokens than it held."""

    what: str
    """The call (``generate``, ``logprob probe`` ...)."""
    held: int
    """Tokens it held beforehand: the bound it was allowed."""
    used: int
    """Tokens it reported spending."""

    def __str__(self) -> str:
        over = self.used - self.held
        return f"{self.what} spent {self.used} tokens against the {self.held} it held ({over} over)"


class TokenLedger:
    """Running token account for one question; thread-safe."""

    def __init__(self, budget: TokenBudget | None = None) -> None:
        self.budget = budget or TokenBudget()
        self.spent = TokenUsage()
        self.calls = 0
        self.overruns: list[Overrun] = []
        self._held = 0
        self._lock = threading.Lock()

    @property
    def limit(self) -> int | None:
        return self.budget.max_total_tokens

    @property
    def remaining(self) -> int | None:
        """Tokens still available (``None`` when unlimited)."""
        if self.limit is None:
            return None
        with self._lock:
            return self.limit - self.spent.total - self._held

    @contextmanager
    def hold(self, tokens: int, what: str = "call") -> Iterator[Reservation]:
        """Reserve ``tokens`` for the duration of a call, or raise ``BudgetExceeded`` now.

        Call ``commit(usage)`` on the reservation inside the block: releasing the hold and recording
        the spend happen under one lock, so a concurrent call never sees the tokens as free.
        """
        with self._lock:
            if self.limit is not None and self.overruns:
                raise BudgetExceeded(
                    f"{what} refused: an earlier call on this question went over what it held "
                    f"({self.overruns[0]}), so the {self.limit}-token budget no longer bounds the question",
                    needed=tokens,
                    remaining=self.limit - self.spent.total - self._held,
                )
            if self.limit is not None:
                available = self.limit - self.spent.total - self._held
                if tokens > available:
                    raise BudgetExceeded(
                        f"{what} needs {tokens} tokens but only {available} of the question's "
                        f"{self.limit}-token budget remain",
                        needed=tokens,
                        remaining=available,
                    )
            self._held += tokens
        reservation = Reservation(self, tokens, what)
        try:
            yield reservation
        finally:
            reservation.release()


class Reservation:
    """Tokens held on a ledger for one call; ``commit`` turns the hold into spent tokens."""

    def __init__(self, ledger: TokenLedger, tokens: int, what: str = "call") -> None:
        self._ledger = ledger
        self.tokens = tokens
        self.what = what
        self._open = True

    def commit(self, usage: TokenUsage) -> None:
        """Release the hold and record what the call really spent, atomically; a spend above the hold is
        recorded as an overrun (a capped ledger then refuses further calls)."""
        with self._ledger._lock:
            self._release_locked()
            self._ledger.spent = self._ledger.spent + usage
            self._ledger.calls += 1
            if usage.total > self.tokens:
                overrun = Overrun(self.what, self.tokens, usage.total)
                self._ledger.overruns.append(overrun)
                if self._ledger.limit is not None:
                    log.warning("token budget overrun: %s", overrun)

    def release(self) -> None:
        with self._ledger._lock:
            self._release_locked()

    def _release_locked(self) -> None:
        if self._open:
            self._ledger._held -= self.tokens
            self._open = False
