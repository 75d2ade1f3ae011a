"""CoalescingVLM: probes from concurrent callers share forward passes, results and charges stay per caller."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from PIL import Image

from foveate.errors import BudgetExceeded
from foveate.synthetic import generate_scene
from foveate.vlm.batching import CoalescingVLM
from foveate.vlm.budget import TokenBudget, TokenLedger
from foveate.vlm.transformers_vlm import TransformersVLM

QUESTIONS = [
    "Is there a red star in the image? Answer Yes or No.",
    "Is there a blue circle in the image? Answer Yes or No.",
]


def views(n: int) -> list[Image.Image]:
    image, _ = generate_scene(7, 0)
    side = image.width // n
    return [image.crop((i * side, 0, (i + 1) * side, side)) for i in range(n)]


def test_concurrent_callers_get_their_own_results_from_shared_passes(vlm: TransformersVLM) -> None:
    crops = views(6)
    direct = [vlm.probe_views([c], [QUESTIONS]) for c in crops]
    ledgers = [TokenLedger() for _ in crops]
    start = threading.Barrier(len(crops))

    with CoalescingVLM(vlm, max_wait_s=0.05) as coalescing:

        def ask(i: int) -> list[float]:
            start.wait()  # all callers arrive together
            (row,) = coalescing.probe_views([crops[i]], [QUESTIONS], ledgers[i])
            return [r.p_yes for r in row]

        with ThreadPoolExecutor(len(crops)) as pool:
            got = list(pool.map(ask, range(len(crops))))
        assert coalescing.merged_calls >= 1  # at least two callers shared a call
    for mine, alone in zip(got, direct, strict=True):
        assert mine == pytest.approx([r.p_yes for r in alone[0]], abs=1e-4)
    for ledger, alone in zip(ledgers, direct, strict=True):
        # each caller is charged its own prompt tokens, as if it had called alone
        expected = sum(r.usage.visual_tokens + r.usage.text_tokens for row in alone for r in row)
        assert ledger.spent.visual_tokens + ledger.spent.text_tokens == expected


def test_capped_calls_bypass_the_queue_and_keep_their_cap(vlm: TransformersVLM) -> None:
    with CoalescingVLM(vlm) as coalescing:
        ledger = TokenLedger(TokenBudget(max_total_tokens=10))
        with pytest.raises(BudgetExceeded):
            coalescing.probe_views(views(1), [QUESTIONS], ledger)
        assert ledger.spent.total == 0
        assert coalescing.merged_calls == 0
        # everything else is the wrapped model's
        assert coalescing.model_id == vlm.model_id


def test_a_failing_merged_call_reaches_every_caller_and_the_worker_survives(vlm: TransformersVLM) -> None:
    with CoalescingVLM(vlm) as coalescing:
        with pytest.raises(ValueError):
            coalescing.probe_views(views(1), [QUESTIONS, QUESTIONS])  # two question lists for one view
        rows = coalescing.probe_views(views(1), [QUESTIONS])
        assert len(rows) == 1 and len(rows[0]) == 2


def test_a_pruned_call_is_not_merged_and_keeps_its_pruning(vlm: TransformersVLM) -> None:
    pruned = TokenBudget(prune="fastv", keep=0.25, layer=1)
    (alone,) = vlm.probe_views(views(1), [QUESTIONS], TokenLedger(pruned))
    with CoalescingVLM(vlm) as coalescing:
        ledger = TokenLedger(pruned)
        (row,) = coalescing.probe_views(views(1), [QUESTIONS], ledger)
        assert coalescing.merged_calls == 0
    assert [r.p_yes for r in row] == pytest.approx([r.p_yes for r in alone], abs=1e-6)
    assert ledger.spent.visual_tokens == sum(r.usage.visual_tokens for r in alone)


def test_calls_after_close_go_straight_through(vlm: TransformersVLM) -> None:
    coalescing = CoalescingVLM(vlm)
    coalescing.close()
    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(len(coalescing.probe_views(views(1), [QUESTIONS]))))
    worker.start()
    worker.join(timeout=60)
    assert done == [1]
    coalescing.close()  # twice is fine
