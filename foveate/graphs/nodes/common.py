"""What the built-in nodes share: the question's remaining budget, the params base, the trace messages."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from foveate.errors import BudgetExceeded
from foveate.graphs.state import QAState
from foveate.vlm.budget import TokenBudget, TokenLedger, TokenUsage

__all__ = ["WATCH", "NodeParams", "overruns", "question_ledger", "say", "spent", "tokens_left"]

WATCH = "foveate_watch"
"""The key, in a run's ``configurable``, of ``fn(node, probes, tokens)``: told each probe of a search as it
happens (``Workflow.stream(watch=...)`` puts it there; a callable is never written into checkpoints)."""


class NodeParams(BaseModel):
    """Base of every node type's params: a key the node does not know is an error."""

    model_config = ConfigDict(extra="forbid")


def question_ledger(state: QAState | dict[str, Any]) -> TokenLedger:
    """A ledger holding what is left of the question's budget after the nodes before this one."""
    budget = TokenBudget.model_validate(state.get("budget") or {})
    spent = TokenUsage(**(state.get("spent") or {})).total
    overruns = state.get("overruns") or []
    if budget.max_total_tokens is not None and overruns:
        raise BudgetExceeded(
            f"no further call on this question: {overruns[0]}, so its {budget.max_total_tokens}-token "
            "budget no longer bounds it",
            needed=1,
            remaining=budget.max_total_tokens - spent,
        )
    if budget.max_total_tokens is not None:
        left = budget.max_total_tokens - spent
        if left < 1:
            raise BudgetExceeded(
                f"the question's {budget.max_total_tokens}-token budget is spent ({spent} tokens)",
                needed=1,
                remaining=left,
            )
        budget = budget.model_copy(update={"max_total_tokens": left})
    return TokenLedger(budget)


def spent(ledger: TokenLedger) -> dict[str, int]:
    return ledger.spent.model_dump()


def overruns(ledger: TokenLedger) -> list[str]:
    """The ledger's overruns, for the state (later nodes then make no call under a capped budget)."""
    return [str(o) for o in ledger.overruns]


def say(node: str, text: str) -> list[dict[str, str]]:
    return [{"node": node, "text": text}]


def tokens_left(state: QAState, wanted: int) -> bool:
    """Whether the question's budget still has ``wanted`` tokens."""
    try:
        remaining = question_ledger(state).remaining
    except BudgetExceeded:
        return False
    return remaining is None or remaining >= wanted
