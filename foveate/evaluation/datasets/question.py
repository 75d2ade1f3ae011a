"""``BenchQuestion``: one question of a benchmark, whatever format it came from.

Every loader turns its format into these, so the runner, the report and ``foveate batch`` see one shape:
an image file, the question, the options in the order the benchmark's authors score them, the right answer
(an option's text, free text, or None for a user's unlabelled question), the split a report groups it by,
and the target boxes where the benchmark gives them (``(x0, y0, x1, y1)`` in image pixels).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from foveate.conformal.matching import matches
from foveate.imaging.boxes import Box

__all__ = ["LETTER_INSTRUCTION", "BenchQuestion"]

LETTER_INSTRUCTION = "Answer with the option's letter from the given choices directly."
"""What follows the lettered options (the wording of LLaVA's evaluations and V*'s test_questions.jsonl)."""


class BenchQuestion(BaseModel):
    """One benchmark question, as the runner asks it."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(min_length=1)
    """The question's id in its benchmark (unique within one load); results are keyed by it."""
    image: Path
    """The image file (a benchmark that embeds images has them written out by its loader)."""
    question: str = Field(min_length=1)
    """What is asked, without the options."""
    options: list[str] = Field(default_factory=list)
    """The choices, in the benchmark's order (empty: a free-text question)."""
    answer: str | None = None
    """The right answer: one of ``options``, or free text; None when the question is unlabelled."""
    split: str = "all"
    """What the report groups it by (V*: attribute / spatial; HR-Bench: ``4K single`` ...)."""
    category: str | None = None
    """The benchmark's finer category, when it has one (MME-RealWorld's subtask)."""
    boxes: list[Box] = Field(default_factory=list)
    """Where the objects the question is about are, when the benchmark says."""

    @model_validator(mode="after")
    def _answer_is_an_option(self) -> BenchQuestion:
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"options {self.options} repeat an entry")
        if self.options and self.answer is not None and self.answer not in self.options:
            raise ValueError(f"answer {self.answer!r} is not one of the options {self.options}")
        for box in self.boxes:
            if not (box[0] < box[2] and box[1] < box[3]):
                raise ValueError(f"box {list(box)} is not (x0, y0, x1, y1) with x0 < x1 and y0 < y1")
        return self

    def is_right(self, choice: str | None) -> bool | None:
        """Whether ``choice`` (the option chosen, or a free-text answer, compared once normalised) is the
        right answer; None for an unlabelled question."""
        if self.answer is None:
            return None
        if self.options:
            return choice == self.answer
        return choice is not None and matches(choice, self.answer)

    def asked(self, *, letters: bool = False) -> tuple[str, list[str]]:
        """The question and options as the model is asked them: the options' texts, or (``letters``) the
        options listed in the question as ``(A) text`` and the letters scored, for a backend that scores
        only single tokens (a server: ``OpenAIVLM``)."""
        if not letters or not self.options:
            return self.question, list(self.options)
        marks = [chr(ord("A") + i) for i in range(len(self.options))]
        listed = "\n".join(f"({m}) {o}" for m, o in zip(marks, self.options, strict=True))
        return f"{self.question}\n{listed}\n{LETTER_INSTRUCTION}", marks

    def option_for(self, choice: str | None, *, letters: bool = False) -> str | None:
        """The option text a model's choice stands for (a letter when asked with ``letters``)."""
        if choice is None or not letters or not self.options:
            return choice
        index = ord(choice.strip()[:1] or "?") - ord("A")
        return self.options[index] if 0 <= index < len(self.options) else None
