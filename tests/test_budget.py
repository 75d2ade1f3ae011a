"""The ledger refuses a call that would overspend, and concurrent holds cannot both slip through."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foveate.errors import BudgetExceeded
from foveate.vlm.budget import TokenBudget, TokenLedger, TokenUsage


def test_hold_refuses_overspend_and_reports_numbers() -> None:
    ledger = TokenLedger(TokenBudget(max_total_tokens=100))
    with ledger.hold(60) as held:
        held.commit(TokenUsage(visual_tokens=40, text_tokens=10, generated_tokens=5))
    assert ledger.spent.total == 55 and ledger.remaining == 45
    refused = pytest.raises(BudgetExceeded, match="needs 46 tokens but only 45")
    with refused as info, ledger.hold(46, "generate"):
        pass
    assert info.value.needed == 46 and info.value.remaining == 45
    assert ledger.remaining == 45  # a refused hold leaves nothing behind


def test_unlimited_ledger() -> None:
    ledger = TokenLedger()
    with ledger.hold(10**9):
        pass
    assert ledger.remaining is None


@given(
    limit=st.integers(1, 500),
    calls=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 200)), max_size=30),
)
def test_spent_never_exceeds_limit(limit: int, calls: list[tuple[int, int]]) -> None:
    """Whatever calls are attempted, charging only within holds never overspends."""
    ledger = TokenLedger(TokenBudget(max_total_tokens=limit))
    for hold, used in calls:
        try:
            with ledger.hold(hold) as held:
                held.commit(TokenUsage(text_tokens=min(hold, used)))
        except BudgetExceeded:
            continue
    assert ledger.spent.total <= limit


def test_concurrent_holds_are_exclusive() -> None:
    ledger = TokenLedger(TokenBudget(max_total_tokens=100))
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def worker() -> None:
        barrier.wait()
        try:
            with ledger.hold(60):
                barrier_after.wait(timeout=2)
                outcomes.append("ran")
        except BudgetExceeded:
            barrier_after.abort()
            outcomes.append("refused")
        except threading.BrokenBarrierError:
            outcomes.append("ran")

    barrier_after = threading.Barrier(2)
    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["ran", "refused"]


def test_commit_and_release_are_atomic_under_contention() -> None:
    """Many threads hold, commit inside the hold, and the limit is never passed."""
    ledger = TokenLedger(TokenBudget(max_total_tokens=1000))

    def worker() -> None:
        for _ in range(200):
            try:
                with ledger.hold(7) as held:
                    held.commit(TokenUsage(text_tokens=7))
            except BudgetExceeded:
                pass

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ledger.spent.total == 7 * (1000 // 7)
    assert ledger.remaining == 1000 - 7 * (1000 // 7)
