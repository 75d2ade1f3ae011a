"""V* Bench as ``craigwu/vstar_bench`` distributes it: ``direct_attributes/`` and ``relative_position/``,
each image (``sa_<N>.jpg``) beside a JSON of the same stem holding ``question``, ``options`` (the right one
first), ``target_object`` and ``bbox`` (one ``[x, y, w, h]`` box per target, in pixels).

The protocol is SEAL's and ZoomEye's (``vstar_bench_eval.py``, ``eval_results_vstar.py``): the options are
scored as answers in their stored order, with no letters, and an answer is right when the model picks the
first; accuracy is reported per split (Attribute = ``direct_attributes``, Spatial = ``relative_position``)
and overall over all questions (not the mean of the two). Other folders (``GPT4V-hard/``, ``OCR/``) and the
community ``test_questions.jsonl`` are not part of the 191 questions and are not read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from foveate.errors import DatasetFormatError
from foveate.evaluation.datasets.question import BenchQuestion

__all__ = ["SPLITS", "load_vstar"]

SPLITS = {"direct_attributes": "attribute", "relative_position": "spatial"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def load_vstar(root: str | Path) -> list[BenchQuestion]:
    """The questions of a V* Bench folder, attribute ones first, each folder in file-name order."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetFormatError(f"{root} is not a folder (V* Bench is a folder with direct_attributes/)")
    present = [name for name in SPLITS if (root / name).is_dir()]
    if not present:
        raise DatasetFormatError(
            f"{root} is not a V* Bench folder: it has neither direct_attributes/ nor relative_position/"
        )
    out: list[BenchQuestion] = []
    for name in present:
        images = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise DatasetFormatError(f"{root / name} holds no images (.jpg or .png beside their .json)")
        for image in images:
            out.append(_question(image, name))
    return out


def _question(image: Path, folder: str) -> BenchQuestion:
    meta = image.with_suffix(".json")
    try:
        data: Any = json.loads(meta.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetFormatError(
            f"{image} has no {meta.name} beside it (V* keeps each question there)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetFormatError(f"{meta}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DatasetFormatError(f"{meta}: a V* question is a JSON object, not {type(data).__name__}")
    for key, kind in (("question", str), ("options", list)):
        if not isinstance(data.get(key), kind):
            raise DatasetFormatError(f"{meta}: no {key!r} ({kind.__name__}) as V* Bench has")
    options = data["options"]
    if len(options) < 2 or not all(isinstance(o, str) and o for o in options):
        raise DatasetFormatError(f"{meta}: 'options' must be at least two texts, the right one first")
    try:
        return BenchQuestion(
            id=f"{folder}/{image.stem}",
            image=image,
            question=data["question"],
            options=options,
            answer=options[0],
            split=SPLITS[folder],
            category=folder,
            boxes=[_xywh(b, meta) for b in data.get("bbox") or []],
        )
    except ValidationError as exc:
        raise DatasetFormatError(f"{meta}: {exc.errors()[0]['msg']}") from None


def _xywh(box: Any, meta: Path) -> tuple[int, int, int, int]:
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        raise DatasetFormatError(f"{meta}: a bbox is [x, y, w, h] in pixels, not {box!r}")
    x, y, w, h = (round(v) for v in box)
    if w <= 0 or h <= 0:
        raise DatasetFormatError(f"{meta}: bbox {box} has no area ([x, y, w, h] needs w, h > 0)")
    return (x, y, x + w, y + h)
