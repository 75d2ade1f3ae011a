"""Budget planner: make a whole zoom search fit a per-question token budget before it starts.

A search under ``max_total_tokens`` would otherwise spend full-price probes until the budget runs out
and stop wherever it happens to be. The planner estimates the search's worst case (the strategy's
``worst_case_probes``, each probe one native-resolution view plus its prompt, plus the answer) and picks the
cheapest change that makes it fit, preferring the one that loses least: first visual-token pruning
inside the model (FastV keeps accuracy best on the embedded model, ``docs/benchmarks/pruning.md``), at
keep 0.5, then 0.25, then 0.1; then lower resolution per view (a cap on visual tokens per image). If
nothing fits, it plans the cheapest setting and says that the search may stop early.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from foveate.vlm.budget import TokenBudget

__all__ = [
    "KEEPS",
    "RESOLUTION_STEPS",
    "TEXT_TOKENS_PER_PROBE",
    "ProbeBound",
    "SearchPlan",
    "plan_search",
    "probe_visual_cost",
]

KEEPS = (1.0, 0.5, 0.25, 0.1)
RESOLUTION_STEPS = (1.0, 0.5, 0.25)  # fractions of the native visual-token count per view
TEXT_TOKENS_PER_PROBE = 48  # a probe's prompt: template, question and cue (the tiny VLM's use ~30)


@dataclass(frozen=True)
class ProbeBound:
    """A search's worst case in probes: ``views`` probes each show the model a view; ``repeats`` are asked
    again of a view already shown (a cue probe's option variants, ``ZoomPrompts.option_cue``), which cost
    only their prompt where the model shares a view's prefix among its questions."""

    views: int
    repeats: int = 0

    @property
    def total(self) -> int:
        return self.views + self.repeats


@dataclass(frozen=True)
class SearchPlan:
    """What the planner chose, and why."""

    budget: TokenBudget  # the budget the search runs under (with pruning / a visual cap if needed)
    estimated_tokens: int  # worst case for the search plus the answer
    fits: bool
    note: str


def probe_visual_cost(tokens: int, method: str | None, keep: float, depth: int, layer: int) -> float:
    """Visual tokens the language model computes for one view of ``tokens`` tokens."""
    if method is None or keep >= 1.0:
        return float(tokens)
    kept = max(1, math.ceil(keep * tokens))
    if method == "cls":
        return float(kept)
    return (layer * tokens + (depth - layer) * kept) / depth  # FastV: the first `layer` layers see all


def plan_search(
    budget: TokenBudget,
    *,
    probes: int,
    view_tokens: int,
    answer_tokens: int,
    prune: Literal["fastv", "cls"] | None,
    depth: int = 32,
    min_view_tokens: int = 1,
    repeats: int = 0,
    shared: bool = False,
) -> SearchPlan:
    """The budget a search of at most ``probes`` probes should run under to fit ``budget``.

    ``view_tokens``: visual tokens of one probe view at full resolution; ``answer_tokens``: what the
    final answer needs (kept out of the search); ``prune``: the method the model supports (None: only
    resolution can change); ``depth``: the language model's layers (FastV's saving depends on it).
    ``repeats``: further probes asked of views already counted (``ProbeBound.repeats``); with ``shared``
    (the model reuses a view's prefix) they cost their prompt alone, except under pruning, which asks each
    probe on its own (``TransformersVLM.probe_views``): a plan that prunes can then cost more than one that
    does not, and is chosen only where the unpruned one does not fit.
    """
    limit = budget.max_total_tokens
    if limit is None or probes + repeats == 0 or budget.prune is not None:
        why = (
            "no total cap" if limit is None else ("no probes" if probes == 0 else "pruning set by the caller")
        )
        return SearchPlan(budget, 0, True, f"no planning needed ({why})")
    layer = budget.layer
    candidates: list[tuple[float, float, str | None]] = []
    for resolution in RESOLUTION_STEPS:
        if resolution < 1.0 and max(min_view_tokens, int(view_tokens * resolution)) >= view_tokens:
            continue  # this model's views cost the same at any size
        for keep in KEEPS if prune is not None else (1.0,):
            candidates.append((resolution, keep, prune if keep < 1.0 else None))
    best: tuple[float, float, str | None, int] | None = None
    cheapest: tuple[float, float, str | None, int] | None = None
    for resolution, keep, method in candidates:
        tokens = max(min_view_tokens, int(view_tokens * resolution))
        per_probe = probe_visual_cost(tokens, method, keep, depth, layer) + TEXT_TOKENS_PER_PROBE
        per_repeat = TEXT_TOKENS_PER_PROBE if shared and method is None else per_probe
        estimate = math.ceil(probes * per_probe + repeats * per_repeat) + answer_tokens
        if cheapest is None or estimate < cheapest[3]:
            cheapest = (resolution, keep, method, estimate)
        if estimate <= limit:
            best = (resolution, keep, method, estimate)
            break
    assert cheapest is not None
    # nothing fits: the cheapest setting (with shared repeats, not always the most pruned)
    resolution, keep, method, estimate = best or cheapest
    fits = estimate <= limit
    update: dict[str, Any] = {}
    parts = []
    if method is not None:
        update |= {"prune": method, "keep": keep}
        parts.append(f"{method} pruning at keep {keep}")
    if resolution < 1.0:
        cap = max(min_view_tokens, int(view_tokens * resolution))
        if budget.max_visual_tokens_per_image is not None:
            cap = min(cap, budget.max_visual_tokens_per_image)
        update["max_visual_tokens_per_image"] = cap
        parts.append(f"views capped at {cap} visual tokens")
    chosen = ", ".join(parts) or "full resolution, no pruning"
    note = (
        f"budget plan: {chosen}; worst case {estimate} of {limit} tokens for {probes + repeats} probes "
        "and the answer"
        + ("" if fits else "; it may still run out, then the answer comes from the best crop so far")
    )
    return SearchPlan(budget.model_copy(update=update), estimate, fits, note)
