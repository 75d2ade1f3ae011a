"""What a strategy searches with: the image, the model, the meter, and the probing calls, in one place.

A ``SearchContext`` is made for each question. Strategies never call the model directly: every probe and
relevance map goes through ``probe`` / ``relevance``, which ask the meter first, so caps hold for any
strategy, built-in or yours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from foveate.errors import BudgetExceeded, UnsupportedRequestError
from foveate.imaging.boxes import Box, best_window, box_union, expand_box
from foveate.vlm.base import VLM, group_by_view
from foveate.vlm.prompts import ZoomPrompts
from foveate.vlm.types import RelevanceMap, YesNoResult
from foveate.zoom.config import Visit, ZoomConfig
from foveate.zoom.experience import Probe, SearchPrior
from foveate.zoom.meter import Meter, SearchStopped

__all__ = ["Found", "SearchContext", "region_box"]


@dataclass
class Found:
    """Where a cue's search settled: the box, the stop probe's confidence there, the cue, the tree depth."""

    box: Box
    confidence: float
    cue: str = ""
    depth: int = 0


@dataclass
class SearchContext:
    """One question's search: the model and its prompts, the image, the caps."""

    vlm: VLM
    config: ZoomConfig
    prompts: ZoomPrompts
    native_side: int
    image: Image.Image
    meter: Meter
    found: list[Found] = field(default_factory=list)
    """What the search has found so far, one entry per cue: the agent answers from it, also when a cap
    stops the search part way (strategies append to it, or replace it as a whole)."""
    prior: SearchPrior | None = None
    """What experience of this kind of question says (``foveate.zoom.experience``); strategies that know
    priors follow it, and a cue it finds nothing for is searched again without it."""
    fallbacks: int = 0
    """Cue searches under the prior that found nothing and were searched again without it."""
    answered: dict[tuple[Box, str], float] = field(default_factory=dict)
    """Every probe answered so far in this search, by view box and prompt: asking again costs nothing, so a
    strategy may ask ahead (``fast`` asks a node's grandchildren in the same pass as its best child)."""
    variants: dict[str, list[str]] = field(default_factory=dict)
    """Probes asked as several (``ZoomPrompts.cue_variants``): the most confident of them is the answer."""
    priorities: dict[tuple[str, Box], float] = field(default_factory=dict)
    """Per (cue, node): the priority the node was queued with (``ZoomEye.expand``: a prior that ranks by
    one probe places children relative to their parent's)."""

    @property
    def full(self) -> Box:
        return (0, 0, self.image.width, self.image.height)

    # ------------------------------------------------------------------ the trace
    def visit(
        self, cue: str, box: Box, depth: int, confidence: float | None = None, **scores: float | None
    ) -> None:
        """Record a node the search looked at, in order."""
        fields = {"order": len(self.meter.visits), "cue": cue, "box": box, "depth": depth}
        self.meter.visited(Visit.model_validate({**fields, "confidence": confidence, **scores}))

    def popped(self, cue: str, box: Box, depth: int, confidence: float | None = None) -> None:
        """Record a node the best-first loop popped (looked at as an answer), with its stop confidence."""
        visit = Visit(
            order=len(self.meter.visits), cue=cue, box=box, depth=depth, confidence=confidence, popped=True
        )
        self.meter.visited(visit)

    def best_visit(self) -> Found | None:
        """The visited node with the highest stop confidence (what a stopped search answers from)."""
        scored = [v for v in self.meter.visits if v.confidence is not None]
        if not scored:
            return None
        top = max(scored, key=lambda v: v.confidence or -1.0)
        return Found(top.box, float(top.confidence or 0.0))

    # ------------------------------------------------------------------ the prior
    def asks_stop(self, depth: int) -> bool:
        """Whether a node at ``depth`` gets a stop probe: not above the prior's ``min_stop_depth`` (no right
        answer of this kind of question came from that high up)."""
        return self.prior is None or depth >= self.prior.min_stop_depth

    def ranked_alone_by(self, depth: int) -> Probe | None:
        """The probe that alone ranks children at ``depth`` (the prior's ``rank_by`` from its
        ``rank_from_depth`` on), or None: the strategy's own ranking."""
        prior = self.prior
        return prior.rank_by if prior is not None and depth >= prior.rank_from_depth else None

    # ------------------------------------------------------------------ probing
    def probe(self, boxes: Sequence[Box], questions: Sequence[Sequence[str]]) -> list[list[float]]:
        """Confidences ``2 * P(Yes) - 1`` of ``questions[i]`` about the crop ``boxes[i]``; a probe already
        answered in this search is not asked again (nor counted)."""
        wanted: dict[Box, list[str]] = {}
        for box, qs in zip(boxes, questions, strict=True):
            for q in qs:
                if (box, q) not in self.answered and q not in wanted.setdefault(box, []):
                    wanted[box].append(q)
        todo = [(box, qs) for box, qs in wanted.items() if qs]
        if todo:
            fresh = self._probe([box for box, _ in todo], [qs for _, qs in todo])
            for (box, qs), confs in zip(todo, fresh, strict=True):
                self.answered.update({(box, q): c for q, c in zip(qs, confs, strict=True)})
        return [[self.answered[(box, q)] for q in qs] for box, qs in zip(boxes, questions, strict=True)]

    def probe_ahead(self, box: Box, prompt: str, ahead: Sequence[tuple[Box, str]]) -> float:
        """One probe's confidence, with ``ahead``'s ``(box, prompt)`` probes asked in the same pass (their
        answers wait in ``answered`` for whoever asks them next)."""
        (conf,), *_ = self.probe([box, *[b for b, _ in ahead]], [[prompt], *[[q] for _, q in ahead]])
        return conf

    def _probe(self, boxes: Sequence[Box], questions: Sequence[Sequence[str]]) -> list[list[float]]:
        """Each question asked as its ``variants`` (itself, if it has none); the surest of them answers."""
        groups = [[self.variants.get(q, [q]) for q in qs] for qs in questions]
        confs = self._probe_asked(boxes, [[v for group in gs for v in group] for gs in groups])
        out: list[list[float]] = []
        for gs, row in zip(groups, confs, strict=True):
            folded, at = [], 0
            for group in gs:
                folded.append(max(row[at : at + len(group)]))
                at += len(group)
            out.append(folded)
        return out

    def _probe_asked(self, boxes: Sequence[Box], questions: Sequence[Sequence[str]]) -> list[list[float]]:
        cfg = self.config
        n = sum(len(q) for q in questions)
        batch = self.vlm.profile.max_batch_size
        # an upper bound, so a cap is never overrun: 2 passes per batch with a shared prefix (only when a
        # view has several questions to share it)
        sharing = cfg.reuse_prefix and any(len(q) > 1 for q in questions)
        passes = math.ceil(n / batch) * (2 if sharing else 1) if cfg.batch_probes else n * 2
        self.meter.check(n, passes)
        views = [self.view(b) for b in boxes]
        try:
            if cfg.batch_probes:
                answers = self._ask(views, questions)
            else:  # one call per probe (the ablation)
                flat = [
                    self._ask([v], [[q]])[0][0] for v, qs in zip(views, questions, strict=True) for q in qs
                ]
                answers = group_by_view(flat, questions)
        except BudgetExceeded as exc:
            raise SearchStopped(str(exc)) from exc
        out: list[list[float]] = []
        for group in answers:
            self.meter.record(group, len(group))
            out.append([r.confidence for r in group])
        return out

    def _ask(
        self, views: Sequence[Image.Image], questions: Sequence[Sequence[str]]
    ) -> list[list[YesNoResult]]:
        return self.vlm.probe_views(
            views, questions, self.meter.ledger, reuse_prefix=self.config.reuse_prefix
        )

    def view(self, box: Box) -> Image.Image:
        """The crop, box-reduced while it stays at least twice the model's input on its short side.

        The processor shrinks every view to the model's input anyway; resampling a 2000 px crop for each
        probe was most of the search's wall time. The answer call gets the crop unreduced.
        """
        crop = self.image.crop(box)
        factor = min(crop.width, crop.height) // (2 * self.native_side)
        return crop.reduce(factor) if factor >= 2 else crop

    def relevance(self, view: Image.Image, question: str) -> RelevanceMap | None:
        """One relevance map (2 probes, or 1 without normalising; 1 forward pass), or None when the model
        cannot read attention."""
        maps = self.relevances([view], [question])
        return None if maps is None else maps[0]

    def relevances(self, views: Sequence[Image.Image], questions: Sequence[str]) -> list[RelevanceMap] | None:
        """Relevance maps of several views in one call (``questions[i]`` about ``views[i]``; 2 probes each,
        or 1 without normalising), or None when the model cannot read attention."""
        if not self.vlm.profile.relevance_maps:
            return None
        normalize = self.prompts.relevance_normalize
        probes = (2 if normalize else 1) * len(views)
        batch = self.vlm.profile.max_batch_size
        self.meter.check(probes, math.ceil(len(views) / batch))
        try:
            maps = self.vlm.relevance_maps(views, questions, self.meter.ledger, normalize=normalize)
        except UnsupportedRequestError:
            return None
        except BudgetExceeded as exc:
            raise SearchStopped(str(exc)) from exc
        self.meter.count(probes, max(1, sum(m.usage.forward_passes for m in maps)))
        return maps

    def attended_window(self, view: Box, prompt: str, side: int, cue: str, depth: int) -> Box | None:
        """The ``side``-square window of ``view`` holding most of ``prompt``'s attention (one map), recorded
        as a visit; None when the model cannot read attention."""
        boxes = self.attended_windows([view], [prompt], [side], [cue], depth)
        return None if boxes is None else boxes[0]

    def attended_windows(
        self,
        views: Sequence[Box],
        prompts: Sequence[str],
        sides: Sequence[int],
        cues: Sequence[str],
        depth: int,
    ) -> list[Box] | None:
        """``attended_window`` for several views, their maps in one call."""
        maps = self.relevances([self.view(v) for v in views], prompts)
        if maps is None:
            return None
        boxes = []
        for view, rel, side, cue in zip(views, maps, sides, cues, strict=True):
            box = best_window(rel.grid, region_box(view, rel.region), (side, side))
            self.visit(cue, box, depth, relevance=1.0)
            boxes.append(box)
        return boxes

    def answer_box(self, crops: list[Box]) -> Box:
        """The crop an answer is given from: the union of the cues' crops, enlarged by the prompts'
        ``crop_enlarge`` and to at least the model's input."""
        union = box_union(crops)
        return expand_box(
            union, self.prompts.crop_enlarge, self.image.width, self.image.height, min_side=self.native_side
        )


def region_box(view: Box, region: tuple[float, float, float, float]) -> Box:
    """The part of ``view`` a relevance map covers, from its fractional ``region``."""
    x0, y0, x1, y1 = view
    w, h = x1 - x0, y1 - y0
    return (
        x0 + round(region[0] * w),
        y0 + round(region[1] * h),
        x0 + round(region[2] * w),
        y0 + round(region[3] * h),
    )
