"""Labelled questions from a user's file: JSON Lines of ``{image, question, options?, answer, category?}``.

Image paths are relative to the file's folder (absolute ones are kept). A scene benchmark's
``manifest.jsonl`` (``foveate bench make``) is such a file too: its lines carry more fields, which are
ignored here; a folder stands for its ``manifest.jsonl``. Every problem is reported as ``FILE:LINE: what``
and nothing is read past the first bad line, so a calibration never runs on part of a file by accident.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from foveate.errors import ManifestError
from foveate.evaluation.datasets.jsonl import question_from_line
from foveate.files import regular_file
from foveate.graphs.state import MAX_OPTIONS

__all__ = ["LabelledQuestion", "load_labelled"]


class LabelledQuestion(BaseModel):
    """One question with its right answer."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    image: Path
    """The image file (resolved against the question file's folder)."""
    question: str = Field(min_length=1)
    """What is asked."""
    options: list[str] = Field(default_factory=list)
    """The choices for a multiple-choice question (empty: a free-text question)."""
    answer: str = Field(min_length=1)
    """The right answer: one of ``options``, or the text a free answer must match once normalised
    (``foveate.conformal.matching``)."""
    category: str | None = None
    """The question's category, for per-category (Mondrian) calibration and reports."""

    @model_validator(mode="after")
    def _answer_is_an_option(self) -> LabelledQuestion:
        if self.options and self.answer not in self.options:
            raise ValueError(f"answer {self.answer!r} is not one of the options {self.options}")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"options {self.options} repeat an entry")
        return self

    @property
    def answer_index(self) -> int | None:
        return self.options.index(self.answer) if self.options else None


def load_labelled(path: str | Path, *, max_options: int = MAX_OPTIONS) -> list[LabelledQuestion]:
    """The questions of a JSON Lines file (or a folder's ``manifest.jsonl``), with checked image paths. Each
    line is read as a question file's line is (``foveate.evaluation.datasets.jsonl``), and must carry its
    right answer."""
    file = Path(path)
    if str(path).strip() and file.is_dir():
        file = file / "manifest.jsonl"
    file = regular_file(file, "question file", ManifestError)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read question file {file}: {exc}") from None
    out: list[LabelledQuestion] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = question_from_line(line, lineno, file, max_options=max_options)
        except ValueError as exc:
            raise ManifestError(f"{file}:{lineno}: {exc}") from None
        if not question.answer:
            raise ManifestError(f"{file}:{lineno}: no answer (a labelled question needs its right answer)")
        out.append(
            LabelledQuestion(
                image=question.image,
                question=question.question,
                options=question.options,
                answer=question.answer,
                category=question.category,
            )
        )
    if not out:
        raise ManifestError(f"{file} has no questions")
    return out
