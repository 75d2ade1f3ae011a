"""How a zoom search is configured, what it visited, and what it returns."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from foveate.imaging.boxes import Box
from foveate.imaging.grounding import Grounding
from foveate.vlm.budget import TokenBudget, TokenUsage
from foveate.vlm.prompts import ZoomPrompts
from foveate.zoom.experience import SearchPrior

__all__ = ["Visit", "ZoomConfig", "ZoomResult"]


class ZoomConfig(BaseModel):
    """How the agent searches; the ``fast`` switches exist so each part can be ablated."""

    model_config = ConfigDict(frozen=True)
    strategy: str = "fast"
    """A registered strategy: ``direct``, ``zoomeye``, ``fast``, ``attention_crop`` or one of yours."""
    max_depth: int = Field(default=5, ge=0, le=12)
    """Deepest level of the image tree the search may reach."""
    native_side: int | None = Field(default=None, ge=8)
    """The model's input side; None: the model's profile says."""
    prompts: ZoomPrompts | None = None
    """The probes' wording and thresholds; None: the model's profile says (its family's)."""
    max_probes: int | None = Field(default=None, ge=0)
    """Most prompt-and-view probes the search may spend."""
    max_forward_passes: int | None = Field(default=None, ge=1)
    """Most batched forward passes, the final answer's included."""
    budget: TokenBudget | None = None
    """The question's token budget (the search keeps what the answer needs)."""
    early_stop: bool = True
    """fast: stop at the root when the whole image already answers."""
    batch_probes: bool = True
    """Probe a node's children in one batched call (off: one call per probe, an ablation)."""
    reuse_prefix: bool = True
    """Share each view's encoding among its probes where the model allows."""
    relevance: bool | None = None
    """fast: rank children by the model's attention; None: the prompts' ``relevance`` decides."""
    top_children: int = Field(default=2, ge=1, le=4)
    """fast with a relevance map: how many of the best-ranked children get probes."""
    map_fallback: float | None = Field(default=0.0, ge=-1.0, le=1.0)
    """fast: when the best map-chosen child's latent confidence is below this, the other children get latent
    probes too (the map pointed the wrong way); None: never."""
    max_pops: int | None = Field(default=None, ge=1)
    """fast: pops per cue before it answers from the best node so far; None: the prompts' ``max_pops``, else
    ZoomEye's rule (3 * depth, then threshold relaxations). A search that has not found the cue by then is
    usually lost in the wrong subtree, and the extra probes rarely buy the answer back
    (docs/benchmarks/zoom.md)."""
    plan_budget: bool = True
    """With ``budget.max_total_tokens``: choose pruning / view resolution so the worst-case search fits."""
    window_scale: float = Field(default=2.0, ge=1.0, le=8.0)
    """attention_crop: the window's side, in native sides."""
    tighten_crops: float | None = Field(default=0.5, gt=0.0, le=1.0)
    """fast, questions with several cues: shrink each cue's crop to the window of this fraction of its side
    holding most of the cue's attention (one map each), so that the union the answer is given from still
    shows small objects; None: answer from the union of the search nodes, as ZoomEye does."""
    ask_ahead: bool = True
    """fast: ask the best child's stop probe and the ranking of its own children in one pass (one batched
    pass per tree level instead of two; four probes wasted where the search stops)."""
    first_level_side: float | None = Field(default=4.0, gt=0.0)
    """fast: the shallowest level it ranks is the first whose nodes' longer side is at most this many native
    sides (the levels above, in one pass or few, are skipped); None: every level from the root's children."""
    max_first_level_nodes: int = Field(default=64, ge=4)
    """fast: at most this many nodes on the first level ranked (4 per level down)."""
    existence_floor: float | None = Field(default=-0.9, ge=-1.0, le=1.0)
    """fast: when children are ranked by the existence probe and the best one's confidence is under this,
    none gets a stop probe (the cue is not there; the search moves on to other nodes); None: always."""
    local_levels: int | None = Field(default=1, ge=1)
    """fast: a later cue's search starts this many levels above the node where the previous cue was found
    (objects a question relates usually sit together), and from the root only if it finds nothing there;
    None: from the root, after one probe asking whether the previous crop already shows the cue."""


class Visit(BaseModel):
    """One node the search looked at: in visiting order, with the confidences it was ranked by."""

    order: int
    cue: str
    box: Box
    depth: int
    confidence: float | None = None
    """The stop probe (can the question, or the cue, be answered from here?), when asked."""
    existence: float | None = None
    latent: float | None = None
    priority: float | None = None
    relevance: float | None = None
    popped: bool | None = None
    """True on the visit recorded when the search popped this node (looked at it as an answer); None in
    runs recorded before pops were (their experience counts stop probes instead)."""


class ZoomResult(BaseModel):
    """The answer and how it was reached."""

    question: str
    answer: str
    options: list[str] = Field(default_factory=list)
    probabilities: list[float] = Field(default_factory=list)
    confidence: float | None = None
    """A free-text answer's length-normalised sequence probability (None: multiple choice, or the backend
    gave no token log-probabilities)."""
    strategy: str
    cues: list[str] = Field(default_factory=list)
    crops: list[Box] = Field(default_factory=list)
    """Where each cue's search ended (empty: the whole image)."""
    answer_box: Box | None = None
    """The crop the answer was given from."""
    grounding: Grounding | None = None
    """With ground-truth boxes (``ZoomAgent.run(truth=...)``): whether ``answer_box`` held the targets."""
    visits: list[Visit] = Field(default_factory=list)
    probes: int = 0
    forward_passes: int = 0
    usage: TokenUsage = Field(default_factory=TokenUsage)
    wall_s: float = 0.0
    budget_exhausted: bool = False
    overruns: list[str] = Field(default_factory=list)
    """Calls that spent more than they held (a server reporting more than its bound): the search stopped."""
    notes: list[str] = Field(default_factory=list)
    prior: SearchPrior | None = None
    """The search prior experience gave this question (``foveate.zoom.experience``), if any."""
    prior_fallbacks: int = 0
    """Cues the prior's search found nothing for, searched again without it."""
