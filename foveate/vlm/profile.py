"""What foveate knows about a model, declared once: its family's facts and the backend's own numbers.

Two records, as pydantic-ai splits a model from its profile:

- ``Family``: the facts every model of an architecture family shares, declared in one module per family
  (``foveate.vlm.families.llava``, ``qwen2_vl``, ``qwen2_5_vl``, ``idefics3``, ``foveate_tiny``): which
  ``model_type`` values it covers, how it counts visual tokens, which pruning methods run on it, whether
  probes can share a cached prefix, how attention over its image tokens lays out as a grid, whether it
  writes free text, and the wording its zoom probes are asked in.
- ``VLMProfile``: what one backend instance declares (``vlm.profile``): its family's facts resolved for the
  loaded model (the token rule read off its processor, its language model's depth, its batch size).

Zoom search, the planner, the graph nodes and batching read only ``vlm.profile``: nothing guesses a
capability from a missing attribute. A backend whose model foveate knows nothing about declares
``VLMProfile.unknown()``, whose assumptions are written here, not scattered as fallbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from foveate.vlm.prompts import ZoomPrompts

if TYPE_CHECKING:
    from foveate.vlm.visual_tokens import VisualTokenRule

__all__ = ["Family", "GridFn", "RuleReader", "VLMProfile", "native_side_of"]

GridFn = Callable[
    [Any, int, Any, int, "VisualTokenRule | None"], tuple[tuple[int, int], tuple[float, float, float, float]]
]
"""``(processor_inputs, row, image, token_count, rule) -> ((rows, cols), region)``: how the image tokens of
prompt ``row`` lay out as a grid, and the part of the image (fractions x0, y0, x1, y1) the grid covers."""

RuleReader = Callable[[Any, Any], "VisualTokenRule | None"]
"""``(processor, model_config) -> rule``: the family's visual-token rule read off a loaded processor; None
when the processor is not one of the family's; ``ValueError`` naming what differs when it is but its
settings cannot be replicated."""

# LLaVA-1.5's view: 336 px, 576 visual tokens. Assumed for a model whose family is unknown (see ``unknown``),
# and a whole image's cost for the answer's reserve when no rule can count it.
_ASSUMED_SIDE = 336
_ASSUMED_VIEW_TOKENS = 576
_ASSUMED_IMAGE_TOKENS = 1024


@dataclass(frozen=True, kw_only=True)
class Family:
    """The facts every model of one architecture family shares."""

    name: str
    """The family's name (``"llava"``, ``"qwen2_vl"``, ``"foveate-tiny"``); a model folder can name it
    in its ``config.json`` as ``"foveate_family"`` (the embedded tiny VLM does)."""
    model_types: tuple[str, ...] = ()
    """The transformers ``config.model_type`` values whose models belong to this family."""
    read_rule: RuleReader | None = None
    """Reads the visual-token rule off a loaded processor; None: counts cannot be predicted."""
    reference_rule: VisualTokenRule | None = None
    """The reference checkpoint's rule (e.g. LLaVA-1.5's 576 tokens), for a server named by family."""
    pruning: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Visual-token pruning methods implemented for the family (``"fastv"``, ``"cls"``), each with the
    language-model ``model_type`` values it runs on."""
    mrope: bool = False
    """Whether the language model takes 3-D M-RoPE positions (Qwen2-VL): pruning must keep them."""
    prefix_reuse: bool = False
    """Whether a forward pass can continue from a cached image-and-template prefix with plain input ids
    (no per-image rotary state), so that probes about one view share its encoding."""
    relevance_grid: GridFn | None = None
    """How the attention over image tokens lays out as a grid; None: no relevance maps."""
    writes: bool = True
    """Whether its models write free text a workflow can use (cues, descriptions, lessons)."""
    zoom: ZoomPrompts = field(default_factory=ZoomPrompts)
    """The wording and thresholds of zoom search's probes for this family."""

    def profile(
        self,
        *,
        token_rule: VisualTokenRule | None = None,
        lm_depth: int | None = None,
        max_batch_size: int = 16,
        prune_methods: tuple[str, ...] = (),
        relevance_maps: bool | None = None,
    ) -> VLMProfile:
        """The profile of one backend of this family. ``token_rule`` defaults to the reference rule."""
        rule = token_rule if token_rule is not None else self.reference_rule
        return VLMProfile(
            family=self.name,
            token_rule=rule,
            native_side=native_side_of(rule),
            lm_depth=lm_depth,
            max_batch_size=max_batch_size,
            prune_methods=prune_methods,
            prefix_reuse=self.prefix_reuse,
            relevance_maps=self.relevance_grid is not None if relevance_maps is None else relevance_maps,
            writes=self.writes,
            zoom=self.zoom,
        )


@dataclass(frozen=True, kw_only=True)
class VLMProfile:
    """What one backend declares about its model; read by zoom, the planner, nodes and batching."""

    family: str
    """The model's family name (``""`` when unknown)."""
    token_rule: VisualTokenRule | None = None
    """How an image of a given size becomes visual tokens; None: unknown (no per-image cap can be met)."""
    native_side: int = _ASSUMED_SIDE
    """The side, in pixels, at which the model sees a large image; zoom never splits a view below it."""
    assumed_view_tokens: int = _ASSUMED_VIEW_TOKENS
    """Visual tokens of one view, assumed for planning when ``token_rule`` is None."""
    assumed_image_tokens: int = _ASSUMED_IMAGE_TOKENS
    """Visual tokens of a whole image, assumed for the answer's reserve when ``token_rule`` is None."""
    lm_depth: int | None = None
    """Decoder layers of the language model (FastV's saving depends on them); None: unknown."""
    max_batch_size: int = 16
    """Most sequences one forward pass (or one burst of server requests) carries."""
    context_length: int | None = None
    """Most tokens one sequence (prompt and generated text) may hold: the model's context window, from its
    config or the server's model card; None: unknown (a server then enforces its own)."""
    prune_methods: tuple[str, ...] = ()
    """Visual-token pruning methods this backend can run, preferred first (``"fastv"``, ``"cls"``)."""
    prefix_reuse: bool = False
    """Whether ``probe_views`` encodes each view once and shares it across its questions."""
    relevance_maps: bool = False
    """Whether ``relevance_maps`` can read the model's attention."""
    writes: bool = True
    """Whether the model writes usable free text (cue lists, descriptions, lessons)."""
    zoom: ZoomPrompts = field(default_factory=ZoomPrompts)
    """The wording and thresholds of zoom search's probes."""

    @classmethod
    def unknown(cls, **overrides: Any) -> VLMProfile:
        """A model of no known family: LLaVA-1.5's view size and token count are assumed for planning, no
        per-image cap can be met, no pruning, no attention, ZoomEye's prompts. A ``token_rule`` given here
        also sets ``native_side``."""
        rule = overrides.get("token_rule")
        if rule is not None and "native_side" not in overrides:
            overrides["native_side"] = native_side_of(rule)
        return replace(cls(family=""), **overrides)

    def view_tokens(self, side: int, cap: int | None = None) -> int:
        """Visual tokens of one ``side`` x ``side`` view, under a per-image ``cap``."""
        if self.token_rule is not None:
            tokens = int(self.token_rule.tokens_for(side, side))
        else:
            tokens = self.assumed_view_tokens
        return tokens if cap is None else min(tokens, cap)

    def image_tokens(self, height: int, width: int) -> int:
        """Visual tokens of a ``height`` x ``width`` image (``assumed_image_tokens`` without a rule)."""
        if self.token_rule is not None:
            return int(self.token_rule.tokens_for(height, width))
        return self.assumed_image_tokens

    def fewest_view_tokens(self) -> int:
        """The fewest visual tokens a view can cost (a 32 px square); 1 when the rule is unknown."""
        return int(self.token_rule.tokens_for(32, 32)) if self.token_rule is not None else 1

    def with_(self, **changes: Any) -> VLMProfile:
        """A copy with some fields changed (``profile.with_(max_batch_size=4)``)."""
        return replace(self, **changes)


def native_side_of(rule: VisualTokenRule | None) -> int:
    """The side a rule's model sees a large image at; LLaVA-1.5's 336 px when the rule cannot say."""
    if rule is None:
        return _ASSUMED_SIDE
    try:
        return rule.native_side()
    except ValueError:  # e.g. Qwen2-VL without resizing refuses a 4096 px square
        return _ASSUMED_SIDE
