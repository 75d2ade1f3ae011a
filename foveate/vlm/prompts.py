"""The wording and thresholds of zoom search's probes, as one model family answers them best.

ZoomEye's prompts and thresholds (read from om-ai-lab/ZoomEye) are the defaults for real models; each
family's profile (``foveate.vlm.families``) carries its own ``ZoomPrompts`` (the embedded tiny VLM was
trained on its own wording, ``foveate.tiny_vlm.tasks``). Every field can be overridden, so a new model
family is a new ``ZoomPrompts`` value, not new code. They live beside the profile, not in ``foveate.zoom``,
because they are a fact about the model: what it was trained to answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ZoomPrompts"]


class ZoomPrompts(BaseModel):
    """Prompt templates (``{o}``: a visual cue, ``{q}``: the question) and the search thresholds.

    - ``existence``: is the cue clearly visible in this view? (child priority)
    - ``latent``: could the cue be found by zooming into this view? (child priority)
    - ``answering``: can the question be answered from this view? (stop rule, one cue)
    - ``cue_answering``: stop rule of one cue's search when the question has several cues
      (ZoomEye asks whether "What is the appearance of the {o}?" can be answered).
    - ``cue_listing``: the generation that lists the question's visual cues, one per line or comma-separated.
    - ``answering_options``: how a multiple-choice question's options join it (``{q}``, ``{options}``:
      comma-separated) wherever the search asks the question itself (the ``answering`` stop probe);
      ``None``: the search sees the question alone. Without them a view that shows the object the question
      names, but in a colour no option offers, rightly says Yes to "could you answer what colour the circle
      is?": the harder world's distractors do exactly that (docs/benchmarks/zoom-notes.md, session 14).
    - ``option_cue``: with one cue and a multiple-choice question, how an option names the cue more
      closely (``{option}``, ``{o}``: "{option} {o}" makes "red square" of "square" and the option "red");
      the cue's existence and latent probes are then asked once per option and the most confident one
      counts. ``None``: the bare cue. A bare "square" is any square, the distractor of a colour no option
      offers too, and ranking by it led the search to that distractor (docs/benchmarks/zoom-notes.md,
      session 16). It assumes options that qualify the object (colours, materials: "left cat" means
      nothing); relevance maps and crop tightening keep the bare cue.
    - ``narrow_cues``: after the search, each cue's crop is narrowed to the half-side window (of nine,
      a quarter of the crop apart) whose existence probe is most confident, if it reaches
      ``answer_threshold``: one pass for all cues. A cue found in a tree node of a few hundred px is a few
      input px wide once two cues' nodes are joined; the existence probe is the model's surest. ``fast``'s
      crop tightening (``ZoomConfig.tighten_crops``) then starts from the narrowed crops (as measured).
    - ``bias``: ``b`` of the depth weight ``w = b + (1 - b) * (depth / max_depth) ** 2``.
    - ``answer_threshold`` / ``lower_threshold``: stop when the stop probe's confidence reaches the first;
      below the second the search gives up. ``relaxations``: how much the threshold drops after
      ``3 * max_depth`` pops, each step allowing ``relax_pops`` more pops.
    - ``answer_with_full_image``: answer from the full image *and* the crop (ZoomEye); models trained on a
      single image per prompt (the tiny VLM) answer from the crop alone.
    - ``relevance``: whether ``fast`` ranks children by the model's attention (a relevance map) instead of
      a latent probe per child; ``relevance_from_depth``: only below this depth (a map of a whole 2000 px
      scene cannot show a 20 px object to any model with a few hundred visual tokens; ZoomEye's probes
      rank those first children); ``relevance_normalize``: ViCrop's rel-att (divide by the attention
      under a generic prompt) or the question's attention alone.
    - ``fast``'s one probe per child: the latent probe, or the existence probe for children at
      ``existence_from_depth`` or deeper (ZoomEye weighs existence more the deeper the node, and a model
      may localise better by it), or, with ``existence_below_side``, for children whose longer side is at
      most that many native sides (the same view scale on any image size); ``rank_cues_by_stop``: with
      several cues, the cue's own stop probe, so
      that one probe per child both ranks it and says whether to stop there (worth it when the stop probe
      asks whether the cue is visible, as the tiny VLM's does). ``max_pops``: pops per cue search before
      ``fast`` answers from the best node so far (``None``: ZoomEye's rule; ``ZoomConfig.max_pops``
      overrides); ``pops_per_level``: instead, that many pops per level of the image's tree.
    """

    model_config = ConfigDict(frozen=True)
    existence: str = "Is there a {o} in the zoomed-in view? Answer Yes or No."
    latent: str = (
        "According to your common sense knowledge and the content of the zoomed-in view, along with its "
        "location in the image, is it possible to find a {o} by further zooming in the current view? "
        "Answer Yes or No."
    )
    answering: str = (
        "Question: {q}\nCould you answer the question based on the available visual information? "
        "Answer Yes or No."
    )
    cue_answering: str = (
        "Question: What is the appearance of the {o}?\nCould you answer the question based on the "
        "available visual information? Answer Yes or No."
    )
    cue_listing: str = (
        "List the objects in the image that must be looked at closely to answer the question, "
        "comma-separated, nothing else.\nQuestion: {q}\nObjects:"
    )
    answering_options: str | None = None
    option_cue: str | None = None
    narrow_cues: bool = False
    bias: float = Field(default=0.2, ge=0.0, le=1.0)
    answer_threshold: float = Field(default=0.6, ge=-1.0, le=1.0)
    lower_threshold: float = Field(default=0.0, ge=-1.0, le=1.0)
    relaxations: tuple[float, ...] = (0.1, 0.1, 0.2)
    relax_pops: int = Field(default=2, ge=0)
    answer_with_full_image: bool = True
    relevance: bool = True
    relevance_from_depth: int = Field(default=0, ge=0)
    relevance_normalize: bool = True
    existence_from_depth: int | None = Field(default=None, ge=1)
    existence_below_side: float | None = Field(default=None, gt=0.0)
    rank_cues_by_stop: bool = False
    max_pops: int | None = Field(default=None, ge=1)
    pops_per_level: float | None = Field(default=None, gt=0.0)
    crop_enlarge: float = Field(default=1.2, ge=1.0, le=4.0)

    def search_question(self, question: str, options: Sequence[str] | None) -> str:
        """``question`` as the search asks it: with ``options`` joined by ``answering_options``, if set."""
        if not options or self.answering_options is None:
            return question
        return self.answering_options.format(q=question, options=", ".join(options))

    def cue_variants(self, cues: Sequence[str], options: Sequence[str] | None) -> dict[str, list[str]]:
        """The probes asked in place of a cue's existence and latent probes (``option_cue``): one per option,
        for a question with one cue and options; empty otherwise."""
        if self.option_cue is None or len(cues) != 1 or not options:
            return {}
        (cue,) = cues
        names = [self.option_cue.format(option=option, o=cue) for option in options]
        return {
            template.format(o=cue): [template.format(o=n) for n in names]
            for template in (self.existence, self.latent)
        }
