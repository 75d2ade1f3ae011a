"""Insights: distil a finished run into short, general lessons, store them, and recall them later (ICAL).

Three plain functions, usable without a graph:

- ``extract_insights(trajectory, vlm=None)``: one to three ``InsightDraft``s from what happened. With a
  model that can write (``vlm.profile.writes``: any family but the embedded tiny VLM), the reasoning
  model writes them, as ICAL's abstraction step does; its lines are parsed by kind. Without one, or
  when its output has no usable line, a rule-based extractor writes them from the trajectory's facts
  (where the answer came from, how large that crop was, whether it was right). Both say *what kind of
  question* a lesson is for, so that retrieval by meaning finds it again for a similar question.
- ``remember(memory, trajectory)``: records the run and stores its insights; a near-duplicate of a stored
  insight is merged into it (counted in ``times_seen``) instead of added, by ``InsightMemory``.
- ``recall(memory, question)`` + ``insights_prompt(hits)``: the top-k insights for a new question
  (leaving out the run being answered) and the text that goes into the reasoning prompt.

Example::

    with InsightMemory.open("memory.db") as memory:
        result = zoom.run(image, question, options)
        remember(memory, Trajectory.from_zoom(result, image.size, correct=True), image=image)
        hits = recall(memory, "What is the color of the circle?")
        print(insights_prompt(hits))
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from foveate.imaging.boxes import Box
from foveate.memory import InsightHit, InsightKind, InsightMemory
from foveate.vlm.base import VLM
from foveate.vlm.types import VLMRequest
from foveate.zoom import ZoomResult
from foveate.zoom.experience import SearchExperience, SearchPrior, experience_of, prior_from

__all__ = [
    "DEFAULT_MIN_SCORE",
    "InsightDraft",
    "RememberResult",
    "RuleInsightExtractor",
    "Trajectory",
    "VLMInsightExtractor",
    "extract_insights",
    "insights_prompt",
    "lessons_prompt",
    "question_kind",
    "question_pattern",
    "recall",
    "remember",
    "search_prior",
]

log = logging.getLogger(__name__)

MAX_INSIGHTS = 3
#: Recall's similarity floor (MiniLM cosine of the question against a lesson). Chosen from the measured
#: distributions of same-kind and other-kind question-lesson pairs (docs/benchmarks/retrieval.md).
DEFAULT_MIN_SCORE = 0.2


class Trajectory(BaseModel):
    """What one run did, in the terms an insight is written in (no pixels, no model objects)."""

    model_config = ConfigDict(frozen=True)
    question: str
    options: list[str] = Field(default_factory=list)
    answer: str | None = None
    correct: bool | None = None  # None: not known (no ground truth, no feedback yet)
    feedback: str | None = None
    strategy: str = "direct"
    cues: list[str] = Field(default_factory=list)
    image_size: tuple[int, int] | None = None  # (width, height)
    answer_box: Box | None = None  # the crop the answer came from; None: the whole image
    confidence: float | None = None  # the chosen option's probability
    probes: int = 0
    budget_exhausted: bool = False
    model_id: str = ""
    experience: SearchExperience | None = None
    """What the search measured (None: no search, or not known), stored with the run for search priors."""

    @classmethod
    def from_zoom(
        cls,
        result: ZoomResult,
        image_size: tuple[int, int],
        *,
        correct: bool | None = None,
        feedback: str | None = None,
        model_id: str = "",
    ) -> Trajectory:
        confidence = max(result.probabilities) if result.probabilities else None
        return cls(
            question=result.question,
            options=result.options,
            answer=result.answer,
            correct=correct,
            feedback=feedback,
            strategy=result.strategy,
            cues=result.cues,
            image_size=image_size,
            answer_box=result.answer_box,
            confidence=confidence,
            probes=result.probes,
            budget_exhausted=result.budget_exhausted,
            model_id=model_id,
            experience=experience_of(result.visits, result.strategy, image_size, result.probes)
            if result.visits
            else None,
        )

    @property
    def crop_fraction(self) -> float | None:
        """The answer crop's share of the image's area (None: answered from the whole image)."""
        if self.answer_box is None or self.image_size is None:
            return None
        x0, y0, x1, y1 = self.answer_box
        width, height = self.image_size
        return max(0, x1 - x0) * max(0, y1 - y0) / max(1, width * height)

    def summary(self) -> str:
        """A few lines for the run's ``trace_summary`` and for the model that writes insights."""
        seen = (
            "the whole image"
            if self.answer_box is None
            else f"a crop {_box_text(self.answer_box)} ({_percent(self.crop_fraction)} of the image)"
        )
        lines = [
            f"question: {self.question}",
            f"options: {', '.join(self.options)}" if self.options else "options: (free answer)",
            f"strategy: {self.strategy}; looked for: {', '.join(self.cues) or '(nothing listed)'}; "
            f"probes: {self.probes}" + ("; the budget ran out" if self.budget_exhausted else ""),
            f"answered from {seen}: {self.answer!r}"
            + (f" with probability {self.confidence:.2f}" if self.confidence is not None else ""),
            "outcome: " + {True: "right", False: "wrong", None: "not known"}[self.correct],
        ]
        if self.feedback:
            lines.append(f"feedback: {self.feedback}")
        return "\n".join(lines)


class InsightDraft(BaseModel):
    """An insight before it is stored."""

    model_config = ConfigDict(frozen=True)
    text: str = Field(min_length=1)
    kind: InsightKind


class RememberResult(BaseModel):
    model_config = ConfigDict(frozen=True)
    run_id: int
    drafts: list[InsightDraft]
    added: list[int]  # ids of new insights
    merged: list[int]  # ids of stored insights the drafts were merged into


def question_pattern(question: str, cues: Sequence[str] = ()) -> str:
    """The question with its objects generalised ("what is the color of <object>"): insights are about a
    kind of question, not one picture."""
    text = question.strip().rstrip("?").strip()
    for cue in sorted({c.strip() for c in cues if c.strip()}, key=len, reverse=True):
        text = re.sub(rf"\b(?:the |a |an )?{re.escape(cue)}\b", "<object>", text, flags=re.IGNORECASE)
    words = text.split()
    if len(words) > 14:
        text = " ".join(words[:14]) + " ..."
    return text[:1].lower() + text[1:]


class RuleInsightExtractor:
    """Lessons written from the trajectory's facts; deterministic, for models that cannot write them."""

    def extract(self, trajectory: Trajectory) -> list[InsightDraft]:
        t = trajectory
        pattern = question_pattern(t.question, t.cues)
        fraction = t.crop_fraction
        drafts: list[InsightDraft] = []
        if t.correct is False and fraction is None:
            drafts.append(
                InsightDraft(
                    kind=InsightKind.FAILURE,
                    text=f"For questions like '{pattern}', answering from the whole image was wrong"
                    f"{_with_confidence(t.confidence)}: the object is too small to read at full view, so "
                    "zoom in before answering.",
                )
            )
        elif t.correct is False:
            drafts.append(
                InsightDraft(
                    kind=InsightKind.FAILURE,
                    text=f"For questions like '{pattern}', the search settled on a crop of "
                    f"{_percent(fraction)} of the image and the answer from it was wrong"
                    f"{_with_confidence(t.confidence)}: check that the crop really shows the object before "
                    "answering, and search further if unsure.",
                )
            )
        elif t.correct is True and fraction is not None:
            drafts.append(
                InsightDraft(
                    kind=InsightKind.PERCEPTION_LESSON,
                    text=f"For questions like '{pattern}', the object became readable in a close-up crop of "
                    f"{_percent(fraction)} of the image, which gave the right answer.",
                )
            )
        elif t.correct is True:
            drafts.append(
                InsightDraft(
                    kind=InsightKind.TIP,
                    text=f"Questions like '{pattern}' were answered right from the whole image, "
                    "without zooming.",
                )
            )
        if len(t.cues) >= 2 and t.correct is True:
            # written only from a success: a relation lesson is about how to look, which a wrong run
            # does not show (its failure lesson above says what went wrong)
            where = (
                "the whole image" if fraction is None else f"one crop of {_percent(fraction)} of the image"
            )
            drafts.append(
                InsightDraft(
                    kind=InsightKind.TASK_RELATION,
                    text=f"Questions like '{pattern}' relate {len(t.cues)} objects: find each, then answer "
                    f"from one view that shows them all (here {where}).",
                )
            )
        if t.budget_exhausted:
            drafts.append(
                InsightDraft(
                    kind=InsightKind.TIP,
                    text=f"The probe budget ran out ({t.probes} probes) on a question like '{pattern}'; such "
                    "questions need a larger budget or a cheaper search strategy.",
                )
            )
        return drafts[:MAX_INSIGHTS]


_KIND_PREFIXES = {
    "perception": InsightKind.PERCEPTION_LESSON,
    "relation": InsightKind.TASK_RELATION,
    "failure": InsightKind.FAILURE,
    "tip": InsightKind.TIP,
}
_LINE = re.compile(r"^\s*(?:[-*\d.)]+\s*)?(perception|relation|failure|tip)\s*:\s*(.+)$", re.IGNORECASE)


class VLMInsightExtractor:
    """The reasoning model writes the lessons (ICAL's abstraction step); rules fill in when it does not."""

    PROMPT = (
        "You answered a question about an image. This is what happened:\n{summary}\n\n"
        "Write one to three short, general lessons that would help answer similar questions about other "
        "images. One per line, each starting with PERCEPTION:, RELATION:, FAILURE: or TIP:. "
        "Do not mention this particular image."
    )

    def __init__(self, vlm: VLM, *, max_new_tokens: int = 160, fallback: RuleInsightExtractor | None = None):
        self.vlm = vlm
        self.max_new_tokens = max_new_tokens
        self.fallback = fallback or RuleInsightExtractor()

    def extract(self, trajectory: Trajectory) -> list[InsightDraft]:
        request = VLMRequest.from_prompt(
            self.PROMPT.format(summary=trajectory.summary()), max_new_tokens=self.max_new_tokens
        )
        text = self.vlm.generate(request).text
        drafts = parse_insights(text)
        if not drafts:
            log.info("the model wrote no usable insight line; using the rule-based lessons instead")
            return self.fallback.extract(trajectory)
        return drafts


def parse_insights(text: str) -> list[InsightDraft]:
    """``KIND: lesson`` lines, at most three, deduplicated; anything else is ignored."""
    drafts: list[InsightDraft] = []
    seen: set[str] = set()
    for line in text.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        body = match.group(2).strip()
        if len(body.split()) < 4 or body.lower() in seen:  # too short to teach anything
            continue
        seen.add(body.lower())
        drafts.append(InsightDraft(kind=_KIND_PREFIXES[match.group(1).lower()], text=body))
        if len(drafts) == MAX_INSIGHTS:
            break
    return drafts


def extract_insights(trajectory: Trajectory, vlm: VLM | None = None) -> list[InsightDraft]:
    """One to three lessons: written by ``vlm`` when it can write, else by rules."""
    if vlm is not None and vlm.profile.writes:
        return VLMInsightExtractor(vlm).extract(trajectory)
    return RuleInsightExtractor().extract(trajectory)


def remember(
    memory: InsightMemory,
    trajectory: Trajectory,
    *,
    image: Any = None,
    image_sha256: str | None = None,
    vlm: VLM | None = None,
    drafts: Sequence[InsightDraft] | None = None,
) -> RememberResult:
    """Record the run, then store its insights (near-duplicates merge into what is stored)."""
    if drafts is None:
        drafts = extract_insights(trajectory, vlm)
    run = memory.record_run(
        trajectory.question,
        trajectory.answer,
        image=image,
        image_sha256=image_sha256,
        correct=trajectory.correct,
        feedback=trajectory.feedback,
        trace_summary=trajectory.summary(),
        model_id=trajectory.model_id,
        question_kind=question_kind(trajectory.question, trajectory.cues),
        experience=trajectory.experience.model_dump(mode="json") if trajectory.experience else None,
    )
    results = memory.add_many([d.text for d in drafts], [d.kind for d in drafts], run_id=run.id)
    return RememberResult(
        run_id=run.id,
        drafts=list(drafts),
        added=[r.insight.id for r in results if not r.merged],
        merged=[r.insight.id for r in results if r.merged],
    )


def recall(
    memory: InsightMemory,
    question: str,
    k: int = 3,
    *,
    exclude_run_id: int | None = None,
    min_score: float | None = DEFAULT_MIN_SCORE,
) -> list[InsightHit]:
    """The insights most relevant to ``question``, best first; weak matches (cosine < ``min_score``) are
    left out, since an unrelated lesson in the prompt only distracts (None: no floor)."""
    return memory.search(question, k, exclude_run_id=exclude_run_id, min_score=min_score)


def question_kind(question: str, cues: Sequence[str]) -> str:
    """The kind of question a run's experience is stored and recalled under: its pattern with the objects
    generalised (``question_pattern``), lower-cased and with single spaces, so that the same wording about
    other objects is the same kind."""
    return " ".join(question_pattern(" ".join(question.split()), cues).lower().split())


def search_prior(
    memory: InsightMemory,
    question: str,
    cues: Sequence[str],
    strategy: str,
    *,
    min_runs: int = 5,
    limit: int = 200,
    spare_pops: int | None = 2,
) -> SearchPrior | None:
    """The search prior for ``question`` from the experience of earlier runs of its kind (``prior_from``);
    None when fewer than ``min_runs`` right runs of the kind searched with ``strategy``. Recalled by the
    kind of question (a structured field), newest ``limit`` runs of this memory's namespace."""
    runs = memory.run_log.experiences(question_kind(question, cues), limit=limit)
    pairs = [
        (SearchExperience.model_validate(r.experience), bool(r.correct))
        for r in runs
        if r.experience is not None and r.correct is not None
    ]
    return prior_from(pairs, strategy, min_runs=min_runs, spare_pops=spare_pops)


def insights_prompt(hits: Sequence[InsightHit]) -> str:
    """The lessons as a system-prompt paragraph; empty when there are none."""
    return lessons_prompt([hit.insight.text for hit in hits])


def lessons_prompt(texts: Sequence[str]) -> str:
    """``insights_prompt`` from the lessons' texts alone (as a workflow's state keeps them)."""
    if not texts:
        return ""
    return "Lessons from earlier questions (most relevant first):\n" + "\n".join(f"- {t}" for t in texts)


def _percent(fraction: float | None) -> str:
    if fraction is None:
        return "100%"
    return f"{fraction * 100:.0f}%" if fraction >= 0.1 else f"{fraction * 100:.1f}%"


def _with_confidence(confidence: float | None) -> str:
    return "" if confidence is None else f" even at probability {confidence:.2f}"


def _box_text(box: Box) -> str:
    x0, y0, x1, y1 = box
    return f"{x1 - x0}x{y1 - y0} px at ({x0}, {y0})"
