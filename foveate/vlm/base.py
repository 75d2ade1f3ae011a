"""The one VLM contract every part of foveate uses, and a base class with the shared plumbing.

A backend declares what it is (``profile``: family, token rule, batch size, what it can do; see
``foveate.vlm.profile``) and answers five operations:

- ``generate``: free text (descriptions, visual cues, reasoning);
- ``score``: log-probability of each candidate answer (multiple choice, conformal scores);
- ``yes_probability`` / ``yes_probabilities``: P(Yes) / (P(Yes) + P(No)) from the next-token logits, the
  confidence signal of zoom search and abstention. It must come from real logits, never parsed text;
- ``probe_views``: Yes/No questions about several views at once (zoom search's probes);
- ``relevance_maps``: where in a view the model looks for a question (needs model internals; the default
  raises ``UnsupportedRequestError``, and ``profile.relevance_maps`` says whether it works).

Async variants let graphs run many questions at once; backends that own a local model run the sync call
in a worker thread, HTTP backends use a real async client. ``foveate.testing.contract`` checks a backend
against this contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from PIL import Image

from foveate.errors import UnsupportedRequestError
from foveate.vlm.budget import TokenLedger
from foveate.vlm.profile import VLMProfile
from foveate.vlm.types import RelevanceMap, ScoreResult, VLMRequest, VLMResult, YesNoResult, yes_share

__all__ = [
    "NO_WORDS",
    "VLM",
    "YES_WORDS",
    "BaseVLM",
    "group_by_view",
    "ledger_or_own",
    "model_fingerprint",
    "probe_views_batched",
    "yes_share",
]

YES_WORDS = ("Yes", "yes", "YES")
NO_WORDS = ("No", "no", "NO")


@runtime_checkable
class VLM(Protocol):
    """What foveate needs from a vision-language model."""

    model_id: str

    @property
    def profile(self) -> VLMProfile:
        """What the model is and can do (``foveate.vlm.profile``)."""
        ...

    def generate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult: ...

    def score(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult: ...

    def yes_probability(self, request: VLMRequest, ledger: TokenLedger | None = None) -> YesNoResult: ...

    def yes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]: ...

    async def agenerate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult: ...

    async def ascore(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult: ...

    async def ayes_probability(
        self, request: VLMRequest, ledger: TokenLedger | None = None
    ) -> YesNoResult: ...

    async def ayes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]: ...

    def probe_views(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[Sequence[str]],
        ledger: TokenLedger | None = None,
        *,
        reuse_prefix: bool = True,
    ) -> list[list[YesNoResult]]: ...

    def relevance_maps(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[str],
        ledger: TokenLedger | None = None,
        *,
        normalize: bool = True,
    ) -> list[RelevanceMap]: ...


class BaseVLM:
    """Shared defaults: batch = loop, async = worker thread, no attention. Backends override what they can
    do better, and set ``model_id`` and ``profile``."""

    model_id: str = ""
    profile: VLMProfile = VLMProfile.unknown()

    def fingerprint(self) -> str:
        """What identifies the weights behind ``model_id`` (calibrations are keyed by it); backends that can
        read their weights return a hash of them (``foveate.vlm.fingerprint``). Default: the id itself."""
        return f"id:{self.model_id}"

    def generate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult:
        raise NotImplementedError

    def score(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult:
        raise NotImplementedError

    def yes_probability(self, request: VLMRequest, ledger: TokenLedger | None = None) -> YesNoResult:
        raise NotImplementedError

    def yes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]:
        """Several Yes/No probes; local backends run them as one batched forward pass."""
        return [self.yes_probability(r, ledger) for r in requests]

    def probe_views(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[Sequence[str]],
        ledger: TokenLedger | None = None,
        *,
        reuse_prefix: bool = True,
    ) -> list[list[YesNoResult]]:
        """Yes/No probes about several views at once: ``questions[i]`` are asked about ``views[i]``.

        This default batches every probe; local backends also encode each view once and share its
        prefix (image and template) across that view's questions. ``reuse_prefix`` is for ablations.
        """
        return probe_views_batched(self, views, questions, ledger)

    def relevance_maps(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[str],
        ledger: TokenLedger | None = None,
        *,
        normalize: bool = True,
    ) -> list[RelevanceMap]:
        """Where in each view the model looks for the question (ViCrop's rel-att, or plain attention when
        ``normalize`` is False); needs model internals."""
        raise UnsupportedRequestError(
            f"{type(self).__name__} cannot read attention, so it has no relevance maps"
        )

    async def agenerate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult:
        return await asyncio.to_thread(self.generate, request, ledger)

    async def ascore(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult:
        return await asyncio.to_thread(self.score, request, options, ledger)

    async def ayes_probability(self, request: VLMRequest, ledger: TokenLedger | None = None) -> YesNoResult:
        return await asyncio.to_thread(self.yes_probability, request, ledger)

    async def ayes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]:
        return await asyncio.to_thread(self.yes_probabilities, requests, ledger)


def probe_views_batched(
    vlm: VLM,
    views: Sequence[Image.Image],
    questions: Sequence[Sequence[str]],
    ledger: TokenLedger | None = None,
) -> list[list[YesNoResult]]:
    """``questions[i]`` about ``views[i]`` through one ``yes_probabilities`` call, answers grouped by view."""
    if len(views) != len(questions):
        raise UnsupportedRequestError("probe_views needs one list of questions per view")
    flat = [VLMRequest.from_prompt(q, images=[v]) for v, qs in zip(views, questions, strict=True) for q in qs]
    return group_by_view(vlm.yes_probabilities(flat, ledger), questions)


def group_by_view(flat: Sequence[YesNoResult], questions: Sequence[Sequence[str]]) -> list[list[YesNoResult]]:
    """Split answers given in question order back into one list per view."""
    out, k = [], 0
    for qs in questions:
        out.append(list(flat[k : k + len(qs)]))
        k += len(qs)
    return out


def model_fingerprint(vlm: VLM) -> str:
    """``vlm.fingerprint()`` for a ``BaseVLM``; the id for any other backend that keeps the protocol."""
    return vlm.fingerprint() if isinstance(vlm, BaseVLM) else f"id:{vlm.model_id}"


def ledger_or_own(request: VLMRequest, ledger: TokenLedger | None) -> TokenLedger:
    """The ledger to charge: the caller's, or a fresh one holding only this request's budget."""
    return ledger if ledger is not None else TokenLedger(request.budget)
