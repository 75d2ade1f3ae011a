"""MME-RealWorld-Lite as ``yifanzhang114/MME-RealWorld-Lite`` distributes it (``data.zip``):
``MME-RealWorld-Lite.json``, a JSON array of ``{Question_id, Image, Text, Answer choices, Ground truth,
Category, Subtask, Task, ...}``, beside ``imgs/`` holding each ``Image``. The full split's
``MME_RealWorld.json``, whose ``Image`` paths name their folder, reads the same way.

Choices are ``"(A) text"``; the right one is the ``Ground truth`` letter. The official evaluation reports
accuracy per task, per subtask and overall, each over questions (micro); the split here is
``Task / Subtask`` and the category ``Category``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from foveate.errors import DatasetFormatError
from foveate.evaluation.datasets.question import BenchQuestion

__all__ = ["load_mme_realworld"]

JSON_NAMES = ("MME-RealWorld-Lite.json", "MME_RealWorld.json", "MME-RealWorld.json")
FIELDS = ("Question_id", "Image", "Text", "Answer choices", "Ground truth")
CHOICE = re.compile(r"^\s*\(([A-Z])\)\s*(.*)$", re.DOTALL)


def _json_file(path: Path) -> Path:
    if path.is_file():
        return path
    for folder in (path, path / "data"):
        for name in JSON_NAMES:
            if (folder / name).is_file():
                return folder / name
    raise DatasetFormatError(f"{path} is not an MME-RealWorld folder: no {JSON_NAMES[0]} in it or in data/")


def load_mme_realworld(path: str | Path) -> list[BenchQuestion]:
    """The questions of an MME-RealWorld(-Lite) JSON file, or of the folder holding it."""
    file = _json_file(Path(path))
    try:
        records: Any = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetFormatError(f"{file}: not readable JSON ({exc})") from None
    if not isinstance(records, list) or not records:
        raise DatasetFormatError(f"{file}: MME-RealWorld is a non-empty JSON array of questions")
    return [_question(r, file, i) for i, r in enumerate(records)]


def _question(record: Any, file: Path, i: int) -> BenchQuestion:
    where = f"{file}[{i}]"
    if not isinstance(record, dict):
        raise DatasetFormatError(f"{where}: a question is a JSON object")
    missing = [f for f in FIELDS if f not in record]
    if missing:
        raise DatasetFormatError(f"{where}: no {missing[0]!r} field (an MME-RealWorld question has {FIELDS})")
    choices = record["Answer choices"]
    if not isinstance(choices, list) or len(choices) < 2:
        raise DatasetFormatError(f"{where}: 'Answer choices' must be a list of '(A) text' choices")
    letters, options = [], []
    for choice in choices:
        match = CHOICE.match(str(choice))
        if match is None:
            raise DatasetFormatError(f"{where}: choice {choice!r} is not '(A) text'")
        letters.append(match.group(1))
        options.append(match.group(2).strip())
    truth = str(record["Ground truth"]).strip().strip("()")
    if truth not in letters:
        raise DatasetFormatError(
            f"{where}: Ground truth {truth!r} is not one of the choices' letters {letters}"
        )
    image = _image(file.parent, str(record["Image"]), where)
    task, subtask = record.get("Task"), record.get("Subtask")
    split = " / ".join(str(x) for x in (task, subtask) if x) or "all"
    try:
        return BenchQuestion(
            id=str(record["Question_id"]),
            image=image,
            question=str(record["Text"]).strip(),
            options=options,
            answer=options[letters.index(truth)],
            split=split,
            category=str(record["Category"]) if record.get("Category") else None,
        )
    except ValidationError as exc:
        raise DatasetFormatError(f"{where}: {exc.errors()[0]['msg']}") from None


def _image(folder: Path, name: str, where: str) -> Path:
    for candidate in (folder / "imgs" / name, folder / name):
        if candidate.is_file():
            return candidate
    raise DatasetFormatError(f"{where}: no image {name} in {folder / 'imgs'} (nor in {folder})")
