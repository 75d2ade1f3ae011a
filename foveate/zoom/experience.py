"""Search experience and the priors drawn from it: what a finished search measured, and how the next search
of the same kind of question can spend fewer probes.

ICAL's lesson is that abstracted experience makes later attempts cheaper; a lesson in the prompt helps only a
model that reads it (docs/benchmarks/retrieval.md: the tiny VLM does not). Experience that reaches the
*search* helps any model, because it is about the model's own probes on this kind of question:

- ``SearchExperience`` (one per run, stored with the run by ``foveate.memory``): per cue, the tree depth the
  search stopped at, the crop's share of the image and its place, the stop probe's confidence there, the pops
  it took, and which ranking probes (existence, latent, relevance) put the path's node first at every level;
  the probes spent. The outcome is the run's own (``correct``), known once ground truth or feedback is.
- ``SearchPrior`` (``prior_from``, over the right and wrong runs of one kind of question): rank children by
  one probe when it alone led every right search (half of ZoomEye's ranking probes), and start ZoomEye's
  search on the whole tree level from which it led, when that is deep and small enough (the levels above
  rank nothing); ask no stop probe above the shallowest depth any right answer came from, skip ``fast``'s
  early stop when no right answer came from the root or its children, and give up on the prior after a few
  more pops than any right search needed.

A search under a prior that finds nothing falls back to the plain search (``TreeSearch.search``); the probes
the prior's search asked stay answered (``SearchContext.answered``), so the fallback pays only for what it
asks anew.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from foveate.imaging.boxes import Box

if TYPE_CHECKING:  # config imports this module (ZoomResult.prior)
    from foveate.zoom.config import Visit

__all__ = ["CueExperience", "Probe", "SearchExperience", "SearchPrior", "experience_of", "prior_from"]

Probe = Literal["existence", "latent", "relevance"]
_PROBES: tuple[Probe, ...] = ("existence", "latent", "relevance")


class CueExperience(BaseModel):
    """Where one cue's search stopped, and what led it there."""

    model_config = ConfigDict(frozen=True)
    cue: str
    depth: int
    """Tree depth of the node the search stopped at (0: the whole image)."""
    share: float
    """That node's share of the image's area."""
    region: tuple[float, float, float, float]
    """That node's box as fractions of the image's width and height (x0, y0, x1, y1)."""
    stop_confidence: float
    """The stop probe's confidence there (``2 * P(Yes) - 1``)."""
    pops: int
    """Nodes the cue's search popped (looked at as answers): the unit ``SearchPrior.max_pops`` caps. For
    runs recorded before pops were, the stop probes it asked (as many, for ``zoomeye``; ``fast``'s
    children carry free stop confidences, so there it over-counts)."""
    ranked: dict[str, list[int]] = Field(default_factory=dict)
    """Per ranking probe: the depths at which it scored the path's node among its siblings."""
    led: dict[str, list[int]] = Field(default_factory=dict)
    """Per ranking probe: the depths at which it scored the path's node above every sibling (a tie is not
    a lead: it would not have chosen that node)."""
    path_scores: dict[str, dict[int, float]] = Field(default_factory=dict)
    """Per ranking probe: the score it gave the path's node, by depth (empty for runs recorded before)."""


class SearchExperience(BaseModel):
    """What one run's search measured (the outcome is the run's)."""

    model_config = ConfigDict(frozen=True)
    strategy: str
    image_size: tuple[int, int]
    probes: int
    cues: list[CueExperience] = Field(default_factory=list)
    """One per cue whose search looked at a node; empty for ``direct`` or a search stopped before any."""


class SearchPrior(BaseModel):
    """How experience changes the next search of the same kind of question (every field: no change)."""

    model_config = ConfigDict(frozen=True)
    rank_by: Probe | None = None
    """Rank children from ``rank_from_depth`` on by this probe alone: ``zoomeye`` asks no other ranking
    probe; ``fast`` with ``relevance`` trusts the map and asks no latent probes when its choice looks
    empty."""
    rank_from_depth: int = 0
    """The shallowest depth whose children ``rank_by`` ranks (above it, the strategy's own ranking)."""
    start_depth: int = 0
    """``zoomeye``: start the search on this whole tree level, every node ranked by ``rank_by`` in one call,
    instead of walking down to it from the root (0: from the root). The levels above ranked nothing that
    right searches followed, and a wrong turn there costs pops the search rarely wins back."""
    min_stop_depth: int = 0
    """No stop probe on nodes shallower than this (they are expanded without being asked)."""
    skip_early_stop: bool = False
    """``fast``: do not ask the root and its children whether they already answer."""
    rank_floor: dict[int, float] = Field(default_factory=dict)
    """Per depth from ``rank_from_depth`` on: a low quantile of the scores ``rank_by`` gave the path's node
    there in the right searches. A child scoring at least this is where a right search could go on, and
    keeps its parent's place in the queue; one below it is queued at its own score (``ZoomEye.expand``: one
    probe's scores and ZoomEye's priorities are on different scales). Empty: every child at its own
    score (so do priors drawn from runs recorded before path scores were)."""
    max_pops: int | None = None
    """Pops per cue before the prior is given up and the plain search runs."""
    runs: int = 0
    """How many runs of this kind of question it was drawn from."""
    reasons: list[str] = Field(default_factory=list)
    """Why each change was made, in words (for traces and the page)."""

    @property
    def changes(self) -> bool:
        return (
            self.rank_by is not None
            or self.start_depth > 0
            or self.min_stop_depth > 0
            or self.skip_early_stop
            or self.max_pops is not None
        )


def _contains(outer: Box, inner: Box) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


Depths = dict[str, list[int]]
Scores = dict[str, dict[int, float]]


def _led(visits: Sequence[Visit], path: Sequence[Visit]) -> tuple[Depths, Depths, Scores]:
    """For each ranking probe: the depths at which an expansion scored the path's node, those at which it
    scored it strictly above every sibling, and its score there.

    An expansion is a run of consecutive visits of one cue at one depth that carry ranking scores (the
    children one pop ranked, in one pass)."""
    groups: list[list[Visit]] = []
    for v in visits:
        if all(getattr(v, p) is None for p in _PROBES):
            continue
        if groups and groups[-1][-1].depth == v.depth and groups[-1][-1].order == v.order - 1:
            groups[-1].append(v)
        else:
            groups.append([v])
    ranked: Depths = {}
    led: Depths = {}
    scores: Scores = {}
    for node in path:
        for group in groups:
            mine = [v for v in group if v.box == node.box]
            if not mine or len(group) < 2:
                continue
            for probe in _PROBES:
                score = getattr(mine[0], probe)
                others = [getattr(v, probe) for v in group if v.box != node.box]
                others = [o for o in others if o is not None]
                if score is None or not others:
                    continue
                ranked.setdefault(probe, []).append(node.depth)
                scores.setdefault(probe, {})[node.depth] = score
                if score > max(others):
                    led.setdefault(probe, []).append(node.depth)
    return ranked, led, scores


def _pops(mine: Sequence[Visit], asked: Sequence[Visit]) -> int:
    """A cue's pops: its popped visits, or for a run recorded before pops were, its stop-probed ones."""
    if any(v.popped is not None for v in mine):
        return sum(bool(v.popped) for v in mine)
    return len(asked)


def experience_of(
    visits: Sequence[Visit], strategy: str, image_size: tuple[int, int], probes: int
) -> SearchExperience:
    """The experience of a finished search, from its visits (``ZoomResult.visits``, in order)."""
    width, height = image_size
    cues: list[CueExperience] = []
    for cue in dict.fromkeys(v.cue for v in visits):
        mine = [v for v in visits if v.cue == cue]
        asked = [v for v in mine if v.confidence is not None]
        if not asked:
            continue
        # where it stopped: the best stop confidence, the latest of equals (a search returns on its first hit)
        stop = max(reversed(asked), key=lambda v: v.confidence or -1.0)
        x0, y0, x1, y1 = stop.box
        # the nodes from the root down to it, once each (a node is visited when ranked and when popped)
        path = list({v.box: v for v in mine if _contains(v.box, stop.box)}.values())
        ranked, led, scores = _led(mine, path)
        cues.append(
            CueExperience(
                cue=cue,
                depth=stop.depth,
                share=(x1 - x0) * (y1 - y0) / max(1, width * height),
                region=(x0 / width, y0 / height, x1 / width, y1 / height),
                stop_confidence=float(stop.confidence or 0.0),
                pops=_pops(mine, asked),
                ranked=ranked,
                led=led,
                path_scores=scores,
            )
        )
    return SearchExperience(strategy=strategy, image_size=image_size, probes=probes, cues=cues)


def prior_from(
    experiences: Sequence[tuple[SearchExperience, bool]],
    strategy: str,
    *,
    min_runs: int = 5,
    lead_share: float = 0.9,
    spare_pops: int | None = 2,
    floor_quantile: float = 0.25,
    max_start_nodes: int = 64,
) -> SearchPrior | None:
    """A prior from ``(experience, right)`` pairs of one kind of question searched by ``strategy``; None when
    fewer than ``min_runs`` right runs searched that way (too little to go on).

    - ``rank_by`` / ``rank_from_depth``: the ranking probe that, from the shallowest depth on, scored the
      path's node strictly first in at least ``lead_share`` of the right searches' rankings there (at least
      ``min_runs`` of them); ZoomEye weighs latent more at shallow depths for this reason: existence is
      unreliable where the object is too small to see;
    - ``min_stop_depth``: the shallowest depth any right cue search stopped at;
    - ``skip_early_stop``: that depth is 2 or more (the root and its children never answered);
    - ``rank_floor``: per depth, the ``floor_quantile`` of the scores ``rank_by`` gave the right searches'
      paths there. 0.25 was chosen on the zoom benchmark's tuning seeds (fed on 7, tested on 8, ZoomEye,
      30 questions): probes on the default scenes 37% below the plain search's with it, 34% with every
      child at its own score, 25% at the minimum, 11% with every child at its parent's place; on the large
      scenes +0.2%, +12%, +3% and -3% (docs/benchmarks/zoom-notes.md);
    - ``start_depth`` (``zoomeye``): ``rank_from_depth`` when that is 2 or deeper and its level has at most
      ``max_start_nodes`` nodes (of a square image), with ``rank_by`` the existence or latent probe. Why: on
      the zoom benchmark's large scenes (tuning seed 7, 20 scenes, the shipped 16 px weights) the existence
      probe put the target's node first among all 64 of level 3 for 75-80% of cues, and among the 16 of
      level 2 for 10-30%: ZoomEye's walk down through levels 1 and 2 follows rankings that see nothing
      there, and about 60% of those scenes' probes went to cue searches that never found their cue
      (docs/benchmarks/zoom-notes.md, sessions 11 and 19);
    - ``max_pops``: the most pops any right cue search took, plus ``spare_pops``.
    Wrong runs are counted in ``runs`` but shape nothing: a prior copies what worked.
    """
    right = [e for e, ok in experiences if ok and e.strategy == strategy and e.cues]
    if len(right) < min_runs:
        return None
    cues = [c for e in right for c in e.cues]
    reasons: list[str] = []
    rank_by: Probe | None = None
    rank_from = 0
    best_share = 0.0
    for probe in _PROBES:
        depths = sorted({d for c in cues for d in c.ranked.get(probe, [])})
        for start in depths:  # the shallowest depth from which on this probe alone led
            scored = sum(1 for c in cues for d in c.ranked.get(probe, []) if d >= start)
            leads = sum(1 for c in cues for d in c.led.get(probe, []) if d >= start)
            if scored >= min_runs and leads / scored >= lead_share:
                if (
                    rank_by is None
                    or start < rank_from
                    or (start == rank_from and leads / scored > best_share)
                ):
                    rank_by, rank_from, best_share = probe, start, leads / scored
                break
    floor: dict[int, float] = {}
    if rank_by is not None:
        by_depth: dict[int, list[float]] = {}
        for c in cues:
            for d, score in c.path_scores.get(rank_by, {}).items():
                if d >= rank_from:
                    by_depth.setdefault(d, []).append(score)
        floor = {
            d: float(np.quantile(v, floor_quantile, method="lower")) for d, v in sorted(by_depth.items())
        }
        reasons.append(
            f"the {rank_by} probe alone ranked the path first from depth {rank_from} on in "
            f"{best_share:.0%} of the right searches' rankings"
        )
    depth = min(c.depth for c in cues)
    if depth > 0:
        reasons.append(f"no right answer came from above depth {depth}")
    start = 0
    # ZoomEye's (``ZoomEye.first_nodes``); ``fast`` starts on a level of its own (``first_level_side``)
    zoomeye = strategy == "zoomeye"
    if zoomeye and rank_by in ("existence", "latent") and rank_from >= 2 and 4**rank_from <= max_start_nodes:
        start = rank_from
        reasons.append(f"the search starts on the {4**start} nodes of depth {start}, ranked by {rank_by}")
    max_pops = None if spare_pops is None else max(c.pops for c in cues) + spare_pops
    if max_pops is not None:
        reasons.append(f"right searches took at most {max(c.pops for c in cues)} pops")
    return SearchPrior(
        rank_by=rank_by,
        rank_from_depth=rank_from,
        rank_floor=floor,
        start_depth=start,
        min_stop_depth=depth,
        skip_early_stop=depth >= 2,
        max_pops=max_pops,
        runs=len(experiences),
        reasons=reasons,
    )
