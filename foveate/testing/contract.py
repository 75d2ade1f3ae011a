"""The VLM contract suite: checks every backend must pass, whatever it runs on.

LangGraph runs one conformance suite over every checkpointer; foveate runs this one over every backend
(``TransformersVLM`` of each family, ``OpenAIVLM`` against a live server, ``CoalescingVLM``,
``ScriptedVLM``), and so can yours::

    @pytest.mark.parametrize("check", contract_checks(), ids=lambda c: c.name)
    def test_my_backend_keeps_the_contract(check):
        check.run(MyVLM(...), ContractInputs())

Each check raises ``ContractViolation`` (an ``AssertionError``) naming what broke. Checks that read
log-probabilities are marked ``logprobs`` (a server that returns none cannot run them; it must refuse them
with ``LogprobsUnavailableError`` instead, which ``logprobs_refused`` checks).

What is checked:

- ``yes_no_from_logits``: P(Yes) comes from log-probabilities of Yes and of No that are real
  log-probabilities of one next-token distribution (both <= 0, their probabilities sum to <= 1), and
  P(Yes) is Yes's share of the two;
- ``scores_are_logprobs``: option scores are log-probabilities (<= 0), in the options' order, and their
  ``probabilities`` sum to 1;
- ``refused_before_any_work``: a call whose budget cannot pay raises ``BudgetExceeded`` before the model
  runs: nothing is charged to the ledger, and (when the suite is told how to count them) no forward pass
  ran;
- ``usage_is_charged``: what a call reports spending is what its ledger was charged, with at least one
  forward pass and some prompt tokens; visual tokens match the profile's rule when it has one;
- ``generated_logprobs_are_logprobs``: ``generate``'s ``token_logprobs`` are None (the backend cannot read
  them) or one finite log-probability (<= 0) per kept token: at least one, at most the tokens its usage
  says were generated (text cut at a stop string may keep fewer);
- ``batch_equals_single``: ``yes_probabilities`` of several requests equals asking them one by one;
- ``probe_views_equal_independent_probes``: ``probe_views`` with prefix reuse equals it without, and equals
  independent ``yes_probability`` calls;
- ``relevance_as_declared``: relevance maps exist exactly when the profile says so (finite, non-negative,
  not all zero); without them, ``UnsupportedRequestError``;
- ``async_equals_sync``: the async variants answer as the sync ones.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from foveate.errors import BudgetExceeded, LogprobsUnavailableError, UnsupportedRequestError
from foveate.vlm.base import VLM
from foveate.vlm.budget import TokenBudget, TokenLedger, TokenUsage
from foveate.vlm.types import VLMRequest, yes_share

__all__ = ["Check", "ContractInputs", "ContractViolation", "contract_checks"]

_TOL = 1e-4


class ContractViolation(AssertionError):
    """A backend broke the VLM contract; the message says which rule and with what values."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractViolation(message)


def _scene(seed: int = 0) -> Image.Image:
    """A small picture with some structure (a bright square on noise), the same for every run."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 120, (96, 128, 3), dtype=np.uint8)
    pixels[30:60, 40:80] = (230, 40, 40)
    return Image.fromarray(pixels)


@dataclass
class ContractInputs:
    """What the checks ask about. ``forward_passes``: a counter of the model's real forward passes (a
    hook), when the test can install one; then ``refused_before_any_work`` also checks it did not move."""

    image: Image.Image = field(default_factory=_scene)
    other: Image.Image = field(default_factory=lambda: _scene(1))
    probe: str = "Is there a red square in the image? Answer Yes or No."
    other_probe: str = "Is there a blue circle in the image? Answer Yes or No."
    question: str = "What is the color of the square?"
    options: tuple[str, ...] = ("red", "blue")
    forward_passes: Callable[[], int] | None = None
    tolerance: float = 1e-4
    """How far two answers to the same probe may differ (a bf16 server batching differently needs more)."""


@dataclass(frozen=True)
class Check:
    """One rule of the contract."""

    name: str
    run: Callable[[VLM, ContractInputs], None]
    logprobs: bool = True
    """Whether the check reads log-probabilities (a server without them cannot run it)."""


def _close(a: float, b: float, what: str, tolerance: float = _TOL) -> None:
    _require(math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance), f"{what}: {a} != {b}")


# ---------------------------------------------------------------------------------------------- checks
def yes_no_from_logits(vlm: VLM, inp: ContractInputs) -> None:
    result = vlm.yes_probability(VLMRequest.from_prompt(inp.probe, [inp.image]))
    _require(0.0 <= result.p_yes <= 1.0, f"P(Yes) {result.p_yes} outside [0, 1]")
    _require(
        result.logprob_yes <= _TOL and result.logprob_no <= _TOL,
        f"log-probabilities above 0: Yes {result.logprob_yes}, No {result.logprob_no}",
    )
    mass = math.exp(result.logprob_yes) + math.exp(result.logprob_no)
    _require(mass <= 1.0 + _TOL, f"P(Yes) + P(No) = {mass} > 1: not one next-token distribution")
    _close(result.p_yes, yes_share(result.logprob_yes, result.logprob_no), "P(Yes) is not Yes's share")


def scores_are_logprobs(vlm: VLM, inp: ContractInputs) -> None:
    options = list(inp.options)
    scored = vlm.score(VLMRequest.from_prompt(inp.question, [inp.image]), options)
    _require(scored.options == options, f"options came back as {scored.options}, asked {options}")
    _require(
        len(scored.logprobs) == len(options), f"{len(scored.logprobs)} scores for {len(options)} options"
    )
    _require(all(lp <= _TOL for lp in scored.logprobs), f"scores above 0: {scored.logprobs}")
    _close(sum(scored.probabilities), 1.0, "option probabilities do not sum to 1")
    _require(scored.best in options, f"best {scored.best!r} is not an option")


def refused_before_any_work(vlm: VLM, inp: ContractInputs) -> None:
    calls: list[tuple[str, Callable[[TokenLedger], object]]] = [
        ("generate", lambda lg: vlm.generate(VLMRequest.from_prompt(inp.question, [inp.image]), lg)),
        (
            "yes_probability",
            lambda lg: vlm.yes_probability(VLMRequest.from_prompt(inp.probe, [inp.image]), lg),
        ),
        (
            "score",
            lambda lg: vlm.score(VLMRequest.from_prompt(inp.question, [inp.image]), list(inp.options), lg),
        ),
        ("probe_views", lambda lg: vlm.probe_views([inp.image], [[inp.probe, inp.other_probe]], lg)),
    ]
    for name, call in calls:
        ledger = TokenLedger(TokenBudget(max_total_tokens=1))
        before = inp.forward_passes() if inp.forward_passes is not None else 0
        try:
            call(ledger)
        except BudgetExceeded:
            pass
        else:
            raise ContractViolation(f"{name} under a 1-token budget did not raise BudgetExceeded")
        _require(
            ledger.spent == TokenUsage() and ledger.calls == 0, f"{name} charged {ledger.spent} when refused"
        )
        if inp.forward_passes is not None:
            moved = inp.forward_passes() - before
            _require(moved == 0, f"{name} ran {moved} forward passes before refusing")


def usage_is_charged(vlm: VLM, inp: ContractInputs) -> None:
    ledger = TokenLedger(TokenBudget(max_total_tokens=10**6))
    result = vlm.generate(VLMRequest.from_prompt(inp.question, [inp.image], max_new_tokens=3), ledger)
    usage = result.usage
    _require(ledger.spent == usage, f"the ledger was charged {ledger.spent}, the call reported {usage}")
    _require(usage.forward_passes >= 1, f"a call reported {usage.forward_passes} forward passes")
    _require(
        usage.prompt_tokens > 0,
        f"a call with an image and a question reported {usage.prompt_tokens} prompt tokens",
    )
    _require(usage.generated_tokens <= 3, f"{usage.generated_tokens} tokens generated, at most 3 asked")
    rule = vlm.profile.token_rule
    if rule is not None:
        want = rule.tokens_for(inp.image.height, inp.image.width)
        _require(
            usage.visual_tokens == want, f"{usage.visual_tokens} visual tokens charged, the rule says {want}"
        )


def generated_logprobs_are_logprobs(vlm: VLM, inp: ContractInputs) -> None:
    result = vlm.generate(VLMRequest.from_prompt(inp.question, [inp.image], max_new_tokens=4))
    logprobs = result.token_logprobs
    if logprobs is None:
        return
    generated = result.usage.generated_tokens
    _require(
        1 <= len(logprobs) <= generated,
        f"{len(logprobs)} token log-probabilities for {generated} generated tokens",
    )
    _require(
        all(isinstance(lp, float) and math.isfinite(lp) and lp <= 0.0 for lp in logprobs),
        f"token log-probabilities that are not finite and <= 0: {logprobs}",
    )
    confidence = result.confidence
    _require(
        confidence is not None and 0.0 <= confidence <= 1.0,
        f"confidence {confidence} outside [0, 1] with token log-probabilities",
    )


def batch_equals_single(vlm: VLM, inp: ContractInputs) -> None:
    requests = [
        VLMRequest.from_prompt(inp.probe, [inp.image]),
        VLMRequest.from_prompt(inp.other_probe, [inp.other]),
    ]
    batch = vlm.yes_probabilities(requests)
    _require(len(batch) == len(requests), f"{len(batch)} answers for {len(requests)} probes")
    for i, (together, request) in enumerate(zip(batch, requests, strict=True)):
        _close(
            together.p_yes, vlm.yes_probability(request).p_yes, f"probe {i} batched vs alone", inp.tolerance
        )


def probe_views_equal_independent_probes(vlm: VLM, inp: ContractInputs) -> None:
    views = [inp.image, inp.other]
    questions = [[inp.probe, inp.other_probe], [inp.other_probe]]
    shared = vlm.probe_views(views, questions, reuse_prefix=True)
    whole = vlm.probe_views(views, questions, reuse_prefix=False)
    _require(
        [len(g) for g in shared] == [2, 1], f"probe_views grouped its answers as {[len(g) for g in shared]}"
    )
    for v, (view, qs) in enumerate(zip(views, questions, strict=True)):
        for q, question in enumerate(qs):
            alone = vlm.yes_probability(VLMRequest.from_prompt(question, [view])).p_yes
            _close(shared[v][q].p_yes, alone, f"view {v} question {q} shared prefix vs alone", inp.tolerance)
            _close(whole[v][q].p_yes, alone, f"view {v} question {q} batched whole vs alone", inp.tolerance)


def relevance_as_declared(vlm: VLM, inp: ContractInputs) -> None:
    if not vlm.profile.relevance_maps:
        try:
            vlm.relevance_maps([inp.image], [inp.probe])
        except UnsupportedRequestError:
            return
        raise ContractViolation("the profile says no relevance maps, but relevance_maps answered")
    (rel,) = vlm.relevance_maps([inp.image], [inp.probe])
    grid = np.asarray(rel.grid, dtype=float)
    _require(grid.ndim == 2 and grid.size > 0, f"a relevance grid of shape {grid.shape}")
    _require(
        bool(np.isfinite(grid).all()) and float(grid.min()) >= 0,
        "a relevance grid with negative or non-finite cells",
    )
    _require(float(grid.sum()) > 0, "an all-zero relevance grid")


def async_equals_sync(vlm: VLM, inp: ContractInputs) -> None:
    request = VLMRequest.from_prompt(inp.probe, [inp.image])

    async def both() -> tuple[float, list[float]]:
        one = await vlm.ayes_probability(request)
        many = await vlm.ayes_probabilities([request, request])
        return one.p_yes, [r.p_yes for r in many]

    one, many = asyncio.run(both())
    alone = vlm.yes_probability(request).p_yes
    _close(one, alone, "ayes_probability vs yes_probability", inp.tolerance)
    for p in many:
        _close(p, alone, "ayes_probabilities vs yes_probability", inp.tolerance)


def logprobs_refused(vlm: VLM, inp: ContractInputs) -> None:
    """For a server without log-probabilities: scoring is refused with a clear error, never guessed."""
    for name, call in (
        ("yes_probability", lambda: vlm.yes_probability(VLMRequest.from_prompt(inp.probe, [inp.image]))),
        ("score", lambda: vlm.score(VLMRequest.from_prompt(inp.question, [inp.image]), list(inp.options))),
    ):
        try:
            call()
        except LogprobsUnavailableError:
            continue
        raise ContractViolation(f"{name} answered without log-probabilities from the server")


_CHECKS = (
    Check("yes_no_from_logits", yes_no_from_logits),
    Check("scores_are_logprobs", scores_are_logprobs),
    Check("refused_before_any_work", refused_before_any_work, logprobs=False),
    Check("usage_is_charged", usage_is_charged, logprobs=False),
    Check("generated_logprobs_are_logprobs", generated_logprobs_are_logprobs, logprobs=False),
    Check("batch_equals_single", batch_equals_single),
    Check("probe_views_equal_independent_probes", probe_views_equal_independent_probes),
    Check("relevance_as_declared", relevance_as_declared, logprobs=False),
    Check("async_equals_sync", async_equals_sync),
)


def contract_checks(*, logprobs: bool = True) -> list[Check]:
    """The contract's checks; ``logprobs=False``: those a server without log-probabilities can run, plus
    ``logprobs_refused``."""
    if logprobs:
        return list(_CHECKS)
    return [c for c in _CHECKS if not c.logprobs] + [
        Check("logprobs_refused", logprobs_refused, logprobs=False)
    ]
