"""The embedded tiny VLM's family: a LLaVA architecture that answers only its own task wording.

Its folder names the family in ``config.json`` (``"foveate_family": "foveate-tiny"``, written by its
trainer), so any copy of it, anywhere, gets this profile. It is a LLaVA model in every way foveate measures
(token arithmetic, prefix reuse, pruning, attention grid), but it was trained on five task templates
(``foveate.tiny_vlm.tasks``): its zoom probes use that wording, it answers from one image per prompt, and
it never writes free text a workflow could use (cue lists, descriptions, lessons).
"""

from __future__ import annotations

from dataclasses import replace

from foveate.tiny_vlm import FAMILY_NAME as NAME
from foveate.vlm.families import llava
from foveate.vlm.prompts import ZoomPrompts

__all__ = ["FAMILY", "NAME"]

FAMILY = replace(
    llava.FAMILY,
    name=NAME,
    model_types=(),  # found by the folder's "foveate_family", never by model_type (it is a plain llava)
    writes=False,
    zoom=ZoomPrompts(
        existence="Is there a {o} in the image? Answer Yes or No.",
        latent="Could the {o} be found by zooming in? Answer Yes or No.",
        answering="Question: {q} Could you answer the question from this view? Answer Yes or No.",
        cue_answering="Is there a {o} in the image? Answer Yes or No.",
        bias=0.2,
        answer_threshold=0.6,
        answer_with_full_image=False,
        # Children are ranked by latent probes. Its plain attention localises below the root's children
        # (taught by ``foveate.tiny_vlm.train.focus_loss``) and rel-att hardly at all, and ranking by
        # either map cost more probes than latent probing (docs/benchmarks/zoom.md, "+ map" rows); its
        # maps (attention_crop, crop tightening) are plain attention. Existence ranks views of at most two
        # native sides (256 px: depth 3 of a 2000 px image, depth 5 of an 8000 px one) and ranks relation
        # cues ("latent probes only" row); a search gets 2.5 pops per tree level (10 on a 2000 px image).
        # Both are scale rules, chosen on the tuning seeds 7 and 8 (benchmarks/zoom.py, TUNING_SEEDS) in
        # place of constants tuned on 2000 px scenes; the page reports other seeds and sizes.
        relevance=False,
        relevance_normalize=False,
        existence_below_side=2.0,
        rank_cues_by_stop=True,
        pops_per_level=2.5,
    ),
)
