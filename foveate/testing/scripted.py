"""``ScriptedVLM``: a VLM whose answers are functions you write, for testing nodes, strategies and workflows.

Like pydantic-ai's ``TestModel``, it runs the real contract (requests in, results with usage out, the
ledger held before every call) with answers decided by your script instead of weights, so a test can put
an agent in a known world: "the model says Yes exactly when the red pixels are big enough"::

    def sees_red(view, prompt):
        red = (np.asarray(view)[..., 0] > 200).mean()
        return 0.95 if red > 0.01 else 0.05

    vlm = ScriptedVLM(yes=sees_red, profile=VLMProfile(family="test", native_side=128))
    ZoomAgent(vlm, ZoomConfig(strategy="fast")).run(image, "Is there a red square?")

Costs are deterministic: every image costs ``visual_tokens`` (the profile's token rule when it has one),
every prompt ``text_tokens``, every generated word one token, and a batch of up to ``max_batch_size``
probes one forward pass. Each call holds its cost on the ledger before the script runs, so a budget that
cannot pay raises ``BudgetExceeded`` with the script never called (``calls`` counts what ran).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np
from PIL import Image

from foveate.errors import UnsupportedRequestError
from foveate.vlm.base import BaseVLM, ledger_or_own
from foveate.vlm.budget import TokenLedger, TokenUsage
from foveate.vlm.profile import VLMProfile
from foveate.vlm.types import RelevanceMap, ScoreResult, VLMRequest, VLMResult, YesNoResult

__all__ = ["ScriptedVLM"]

YesFn = Callable[[Image.Image, str], float]
"""``(view, prompt) -> P(Yes)`` for a Yes/No probe about one image."""
ScoreFn = Callable[[list[Image.Image], str, list[str]], Sequence[float]]
"""``(images, prompt, options) -> probabilities`` (any positive weights; they are normalised)."""
GenerateFn = Callable[[list[Image.Image], str], str]
"""``(images, prompt) -> text``."""
RelevanceFn = Callable[[Image.Image, str], np.ndarray]
"""``(view, question) -> grid`` of non-negative attention weights over the view."""

_P_FLOOR = 1e-6


class ScriptedVLM(BaseVLM):
    """A VLM answering from scripts. Unset scripts answer neutrally: P(Yes) 0.5, uniform options, ``""``;
    without ``relevance`` it has no relevance maps (as a server has none)."""

    def __init__(
        self,
        *,
        yes: YesFn | None = None,
        score: ScoreFn | None = None,
        generate: GenerateFn | None = None,
        relevance: RelevanceFn | None = None,
        profile: VLMProfile | None = None,
        visual_tokens: int = 64,
        text_tokens: int = 20,
        model_id: str = "scripted",
        generate_confidence: float | None = None,
    ) -> None:
        if generate_confidence is not None and not 0.0 < generate_confidence <= 1.0:
            raise ValueError(f"generate_confidence must be in (0, 1], got {generate_confidence}")
        self.model_id = model_id
        self.generate_confidence = generate_confidence
        """The ``confidence`` of every generated text: each word is one token of log-probability
        ``log(generate_confidence)``. None (the default): ``token_logprobs`` is None, as from a server that
        returns no log-probabilities. An empty text has none either way."""
        self.yes_script = yes
        self.score_script = score
        self.generate_script = generate
        self.relevance_script = relevance
        self.profile = replace(profile or VLMProfile.unknown(), relevance_maps=relevance is not None)
        self.visual_tokens = visual_tokens
        self.text_tokens = text_tokens
        self.calls: Counter[str] = Counter()
        """How many times each operation's script ran (``yes``, ``score``, ``generate``, ``relevance``)."""

    # ------------------------------------------------------------------ costs
    def _image_tokens(self, image: Image.Image) -> int:
        rule = self.profile.token_rule
        return int(rule.tokens_for(image.height, image.width)) if rule is not None else self.visual_tokens

    def _usage(self, request: VLMRequest, forward_passes: int, generated: int = 0) -> TokenUsage:
        return TokenUsage(
            visual_tokens=sum(self._image_tokens(img) for img in request.images),
            text_tokens=self.text_tokens,
            generated_tokens=generated,
            forward_passes=forward_passes,
        )

    # ------------------------------------------------------------------ operations
    def yes_probabilities(
        self, requests: Sequence[VLMRequest], ledger: TokenLedger | None = None
    ) -> list[YesNoResult]:
        size = self.profile.max_batch_size
        usages = [self._usage(r, 1 if i % size == 0 else 0) for i, r in enumerate(requests)]
        own = [ledger_or_own(r, ledger) for r in requests]
        if ledger is not None:
            with ledger.hold(sum(u.total for u in usages), "yes_probability") as held:
                results = [self._yes(r, u) for r, u in zip(requests, usages, strict=True)]
                held.commit(TokenUsage.sum(usages))
            return results
        results = []
        for request, usage, book in zip(requests, usages, own, strict=True):
            with book.hold(usage.total, "yes_probability") as held:
                results.append(self._yes(request, usage))
                held.commit(usage)
        return results

    def yes_probability(self, request: VLMRequest, ledger: TokenLedger | None = None) -> YesNoResult:
        return self.yes_probabilities([request], ledger)[0]

    def _yes(self, request: VLMRequest, usage: TokenUsage) -> YesNoResult:
        self.calls["yes"] += 1
        p = 0.5
        if self.yes_script is not None and request.images:
            p = float(self.yes_script(request.images[-1], request.messages[-1].text))
        p = min(1 - _P_FLOOR, max(_P_FLOOR, p))
        # the two words' share of the next-token distribution: the rest goes to other tokens, as in a model
        mass = 0.9
        return YesNoResult.from_logprobs(
            math.log(mass * p), math.log(mass * (1 - p)), usage=usage, latency_s=0.0, model_id=self.model_id
        )

    def score(
        self, request: VLMRequest, options: Sequence[str], ledger: TokenLedger | None = None
    ) -> ScoreResult:
        if not options:
            raise UnsupportedRequestError("score needs at least one option")
        usage = self._usage(request, 1)
        with ledger_or_own(request, ledger).hold(usage.total, "score") as held:
            self.calls["score"] += 1
            prompt = request.messages[-1].text
            script = self.score_script
            weights = (
                [1.0] * len(options)
                if script is None
                else [float(w) for w in script(request.images, prompt, list(options))]
            )
            if len(weights) != len(options) or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"the score script gave {weights} for {len(options)} options")
            total = sum(weights)
            logprobs = [math.log(max(w / total, _P_FLOOR)) for w in weights]
            held.commit(usage)
        return ScoreResult(options=list(options), logprobs=logprobs, usage=usage, model_id=self.model_id)

    def generate(self, request: VLMRequest, ledger: TokenLedger | None = None) -> VLMResult:
        limit = request.options.max_new_tokens
        hold = self._usage(request, 1, generated=limit)
        with ledger_or_own(request, ledger).hold(hold.total, "generate") as held:
            self.calls["generate"] += 1
            script = self.generate_script
            text = "" if script is None else script(request.images, request.messages[-1].text)
            words = text.split()[:limit]
            usage = self._usage(request, 1, generated=len(words))
            held.commit(usage)
        logprobs = None
        if self.generate_confidence is not None and words:
            logprobs = [math.log(self.generate_confidence)] * len(words)
        return VLMResult(
            text=" ".join(words),
            finish_reason="stop",
            token_logprobs=logprobs,
            usage=usage,
            model_id=self.model_id,
        )

    def relevance_maps(
        self,
        views: Sequence[Image.Image],
        questions: Sequence[str],
        ledger: TokenLedger | None = None,
        *,
        normalize: bool = True,
    ) -> list[RelevanceMap]:
        if self.relevance_script is None:
            return super().relevance_maps(views, questions, ledger, normalize=normalize)
        if len(views) != len(questions):
            raise UnsupportedRequestError("relevance_maps needs one question per view")
        prompts = 2 if normalize else 1
        usages = [
            TokenUsage(
                visual_tokens=prompts * self._image_tokens(v),
                text_tokens=prompts * self.text_tokens,
                forward_passes=1 if i == 0 else 0,
            )
            for i, v in enumerate(views)
        ]
        book = ledger if ledger is not None else TokenLedger()
        out: list[RelevanceMap] = []
        with book.hold(sum(u.total for u in usages), "relevance_maps") as held:
            for view, question, usage in zip(views, questions, usages, strict=True):
                self.calls["relevance"] += 1
                grid = np.asarray(self.relevance_script(view, question), dtype=float)
                out.append(RelevanceMap(grid=grid, usage=usage))
            held.commit(TokenUsage.sum(usages))
        return out

    def __repr__(self) -> str:
        return f"ScriptedVLM(model_id={self.model_id!r}, profile={self.profile.family!r})"
