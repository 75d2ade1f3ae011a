"""Benchmarks in the formats their authors distribute, read into ``BenchQuestion``s.

One module per format: ``vstar`` (V* Bench folders), ``hrbench`` (HR-Bench 4K / 8K TSV or parquet),
``mme_realworld`` (MME-RealWorld-Lite JSON + images), ``jsonl`` (a question file of one's own). Each refuses
a folder that is not in its format with a ``DatasetFormatError`` naming the first thing that differs.
"""

from __future__ import annotations

from pathlib import Path

from foveate.errors import DatasetFormatError
from foveate.evaluation.datasets.hrbench import load_hrbench
from foveate.evaluation.datasets.jsonl import LineProblem, read_question_file
from foveate.evaluation.datasets.mme_realworld import load_mme_realworld
from foveate.evaluation.datasets.question import BenchQuestion
from foveate.evaluation.datasets.vstar import load_vstar
from foveate.graphs.state import MAX_OPTIONS

__all__ = ["FORMATS", "BenchQuestion", "LineProblem", "load_benchmark", "read_question_file"]

FORMATS = ("vstar", "hrbench", "mme-realworld", "jsonl")


def load_benchmark(
    fmt: str, path: str | Path, *, images_dir: Path, limit: int | None = None, max_options: int = MAX_OPTIONS
) -> list[BenchQuestion]:
    """The questions of the benchmark at ``path`` in format ``fmt``; with ``limit``, the first ``limit``
    taken from each split in turn (so that ``--limit 20`` of V* has attribute and spatial questions).
    Embedded images (HR-Bench) are written under ``images_dir``. Refuses repeated question ids."""
    name = fmt.lower().replace("_", "-")
    if name == "vstar":
        questions = load_vstar(path)
    elif name == "hrbench":
        questions = load_hrbench(path, images_dir=images_dir, limit=limit)
    elif name in ("mme-realworld", "mme-realworld-lite"):
        questions = load_mme_realworld(path)
    elif name == "jsonl":
        questions, _ = read_question_file(path, strict=True, max_options=max_options)
    else:
        raise DatasetFormatError(f"no benchmark format {fmt!r}; known: {', '.join(FORMATS)}")
    seen: set[str] = set()
    for q in questions:
        if q.id in seen:
            raise DatasetFormatError(f"{path}: question id {q.id!r} appears twice")
        seen.add(q.id)
    return questions if limit is None else first_of_each_split(questions, limit)


def first_of_each_split(questions: list[BenchQuestion], limit: int) -> list[BenchQuestion]:
    """``limit`` questions, taken from each split in turn, each split in its own order."""
    by_split: dict[str, list[BenchQuestion]] = {}
    for q in questions:
        by_split.setdefault(q.split, []).append(q)
    queues = [iter(v) for v in by_split.values()]
    out: list[BenchQuestion] = []
    while queues and len(out) < limit:
        for queue in list(queues):
            item = next(queue, None)
            if item is None:
                queues.remove(queue)
            elif len(out) < limit:
                out.append(item)
    return out
