"""A question file of one's own: JSON Lines of ``{id?, image, question, options?, answer?, category?,
boxes?}``, image paths relative to the file, ``boxes`` as ``[x0, y0, x1, y1]`` in image pixels.

``foveate eval jsonl`` reads it strictly (the first bad line stops the load, named ``FILE:LINE``);
``foveate batch`` reads it leniently: each bad line becomes a problem with its line number and the rest
are answered. A line without ``id`` is named by its line number (``line-12``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foveate.errors import DatasetFormatError, validation_problems
from foveate.evaluation.datasets.question import BenchQuestion
from foveate.files import regular_file
from foveate.graphs.state import MAX_OPTIONS, RunInput

__all__ = ["LineProblem", "question_from_line", "read_question_file"]


class LineProblem(BaseModel):
    """A line of a question file that cannot be asked, and why."""

    model_config = ConfigDict(frozen=True)
    line: int
    """Its line number (from 1)."""
    error: str
    """What is wrong with it."""


class _Line(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | int | None = None
    image: str = Field(min_length=1)
    question: str = Field(min_length=1)
    options: list[str] = Field(default_factory=list)
    answer: str | None = None
    category: str | None = None
    boxes: list[tuple[int, int, int, int]] = Field(default_factory=list)


def read_question_file(
    path: str | Path, *, strict: bool = True, max_options: int = MAX_OPTIONS
) -> tuple[list[BenchQuestion], list[LineProblem]]:
    """The questions of a JSONL file and, when not ``strict``, the lines that could not be read (each
    checked as it will be asked, with at most ``max_options`` options: the setting)."""
    file = regular_file(path, "question file", DatasetFormatError)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetFormatError(f"cannot read question file {file}: {exc}") from None
    questions: list[BenchQuestion] = []
    problems: list[LineProblem] = []
    seen: set[str] = set()
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            question = question_from_line(line, lineno, file, max_options=max_options)
            if question.id in seen:
                raise ValueError(f"id {question.id!r} appears twice")
        except ValueError as exc:  # includes DatasetFormatError
            if strict:
                raise DatasetFormatError(f"{file}:{lineno}: {exc}") from None
            problems.append(LineProblem(line=lineno, error=str(exc)))
            continue
        seen.add(question.id)
        questions.append(question)
    if not questions and strict:
        raise DatasetFormatError(f"{file} has no questions")
    return questions, problems


def question_from_line(
    line: str, lineno: int, file: Path, *, max_options: int = MAX_OPTIONS
) -> BenchQuestion:
    """One line of a question file as a question (its image resolved against the file's folder), or a
    ``ValueError`` saying what is wrong with it (without the line's place: the caller adds it)."""
    try:
        data: Any = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ValueError("a line must be a JSON object with image and question")
    try:
        item = _Line.model_validate(data)
        image = Path(item.image).expanduser()
        image = image if image.is_absolute() else file.parent / image
        if not image.is_file():
            raise ValueError(f"no image file {image}")
        # the checks a question gets when it is asked (blank, not UTF-8, options repeated, empty or
        # alone), made here so that such a line is reported by number rather than "answered" with an error
        asked = {"question": item.question, "image": image, "options": item.options}
        RunInput.model_validate(asked, context={"max_options": max_options})
        return BenchQuestion(
            id=str(item.id) if item.id is not None else f"line-{lineno}",
            image=image,
            question=item.question,
            options=item.options,
            answer=item.answer,
            split=item.category or "all",
            category=item.category,
            boxes=item.boxes,
        )
    except ValidationError as exc:
        raise ValueError(validation_problems(exc, "line")) from None
