"""Coalesce Yes/No probes from concurrent questions into shared batched forward passes.

When a workflow answers many questions at once (``Workflow.batch`` / ``abatch``), each question's zoom
search sends small batches of probes from its own thread. Run one after another, every small batch pays
a whole forward pass; ``CoalescingVLM`` puts them in a queue that one worker thread drains, sending
everything that arrived together as one ``probe_views`` call and handing each caller its own results.
This is the continuous batching a serving engine (vLLM) does, for a local ``transformers`` model.

Token budgets stay exact: a call whose ledger carries any setting (a cap, pruning, a visual-token limit)
is not coalesced, since the backend reads those from the ledger; plain calls are charged what their own
probes really cost.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from PIL import Image

from foveate.errors import ContextLengthError
from foveate.vlm.base import VLM, BaseVLM, model_fingerprint
from foveate.vlm.budget import TokenBudget, TokenLedger, TokenUsage
from foveate.vlm.profile import VLMProfile
from foveate.vlm.types import RelevanceMap, ScoreResult, VLMRequest, VLMResult, YesNoResult

__all__ = ["CoalescingVLM"]


@dataclass
class _Job:
    views: Sequence[Image.Image]
    questions: Sequence[Sequence[str]]
    reuse_prefix: bool
    ledger: TokenLedger | None
    future: Future[list[list[YesNoResult]]] = field(default_factory=Future)

    @property
    def probes(self) -> int:
        return sum(len(q) for q in self.questions)


class CoalescingVLM(BaseVLM):
    """Wraps a VLM; ``probe_views`` calls from concurrent threads share forward passes.

    ``max_probes``: most probes per merged call (the backend splits further by its own batch size);
    ``max_wait_s``: how long the worker waits for more callers after the first arrives. Everything
    else (``generate``, ``score``, ``relevance_maps``) goes straight to the wrapped model, whose
    ``model_id`` and ``profile`` it declares.
    """

    def __init__(self, vlm: VLM, *, max_probes: int = 256, max_wait_s: float = 0.004) -> None:
        self.vlm = vlm
        self.model_id = vlm.model_id
        self.profile: VLMProfile = vlm.profile
        self.max_probes = max_probes
        self.max_wait_s = max_wait_s
        self.merged_calls = 0  # how many backend calls served more than one caller
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self._worker = threading.Thread(target=self._drain, name="foveate-coalescer", daemon=True)
        self._worker.start()

    # ------------------------------------------------------------------ straight to the model
    def fingerprint(self) -> str:
        return model_fingerprint(self.vlm)

    def generate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult:
        return self.vlm.generate(request, ledger)

    def score(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult:
        return self.vlm.score(request, options, ledger)

    def yes_probability(self, request: VLMRequest, ledger: TokenLedger | None = None) -> YesNoResult:
        return self.vlm.yes_probability(request, ledger)

    def yes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]:
        return self.vlm.yes_probabilities(requests, ledger)

    def relevance_maps(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[str],
        ledger: TokenLedger | None = None,
        *,
        normalize: bool = True,
    ) -> list[RelevanceMap]:
        return self.vlm.relevance_maps(views, questions, ledger, normalize=normalize)

    def close(self) -> None:
        """Stop the worker (calls already queued are served first; later calls go straight through)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._jobs.put(None)
        self._worker.join(timeout=30)

    def __enter__(self) -> CoalescingVLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def probe_views(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[Sequence[str]],
        ledger: TokenLedger | None = None,
        *,
        reuse_prefix: bool = True,
    ) -> list[list[YesNoResult]]:
        if ledger is not None and ledger.budget != TokenBudget():
            # a cap, pruning or a visual limit is read from the ledger by the backend: call it directly
            return self._call(views, questions, ledger, reuse_prefix)
        job = _Job(views, questions, reuse_prefix, ledger)
        with self._lock:  # jobs are queued before close()'s sentinel, or not at all
            closed = self._closed
            if not closed:
                self._jobs.put(job)
        if closed:
            return self._call(views, questions, ledger, reuse_prefix)
        return job.future.result()

    # ------------------------------------------------------------------ worker
    def _call(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[Sequence[str]],
        ledger: TokenLedger | None,
        reuse_prefix: bool,
    ) -> list[list[YesNoResult]]:
        return self.vlm.probe_views(views, questions, ledger, reuse_prefix=reuse_prefix)

    def _drain(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.max_wait_s
            stop = False
            while sum(j.probes for j in batch) < self.max_probes:
                try:
                    job = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            for reuse in (True, False):  # one merged call per prefix mode
                group = [j for j in batch if j.reuse_prefix == reuse]
                if group:
                    self._serve(group, reuse)
            if stop:
                return

    def _serve(self, group: list[_Job], reuse_prefix: bool) -> None:
        views = [v for j in group for v in j.views]
        questions = [q for j in group for q in j.questions]
        try:
            results = self._call(views, questions, None, reuse_prefix)
        except ContextLengthError as exc:
            if len(group) == 1:
                group[0].future.set_exception(exc)
                return
            for job in group:  # one question's long prompt must not fail the questions merged with it
                self._serve([job], reuse_prefix)
            return
        except BaseException as exc:  # hand the failure to every caller, keep the worker alive
            for job in group:
                job.future.set_exception(exc)
            return
        if len(group) > 1:
            self.merged_calls += 1
        start = 0
        for job in group:
            mine = results[start : start + len(job.views)]
            start += len(job.views)
            if job.ledger is not None:
                used = TokenUsage.sum(r.usage for row in mine for r in row)
                # after the fact, so hold exactly what was spent (only uncapped ledgers are coalesced)
                with job.ledger.hold(used.total, "coalesced probes") as reservation:
                    reservation.commit(used)
            job.future.set_result(mine)
