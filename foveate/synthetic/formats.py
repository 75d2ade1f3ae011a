"""The synthetic scenes written in the published benchmarks' formats (``foveate bench make --format``).

``write_vstar`` (V* Bench folders), ``write_hrbench`` (HR-Bench TSV or parquet, four cycles per question),
``write_mme_realworld`` (MME-RealWorld-Lite JSON + ``imgs/``) and ``write_jsonl`` (foveate's own question
file) lay the same seeded scenes out as each benchmark's authors lay out theirs, so that ``foveate eval``
can be run end to end without the real datasets (which are large and need a network to fetch), and the
loaders are tested on files laid out as the real ones.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path
from typing import Any

from PIL import Image

from foveate.synthetic.items import PLAIN, SceneItem, World
from foveate.synthetic.scenes import generate_scene

__all__ = ["FORMATS", "write_format", "write_hrbench", "write_jsonl", "write_mme_realworld", "write_vstar"]

FORMATS = ("vstar", "hrbench", "mme-realworld", "jsonl")

SIZES = (1536, 2048)  # the scene benchmark's own sides (generate_scene's default)


def _scenes(
    n: int, seed: int, size_range: tuple[int, int], world: World, category: str | None = None
) -> list[tuple[Image.Image, SceneItem]]:
    kwargs: dict[str, Any] = {"size_range": size_range, "world": world}
    if category is not None:
        kwargs["category"] = category
    return [generate_scene(seed, i, **kwargs) for i in range(n)]


def _xywh(item: SceneItem) -> list[list[int]]:
    return [[t.box[0], t.box[1], t.box[2] - t.box[0], t.box[3] - t.box[1]] for t in item.targets]


def write_vstar(
    root: Path, n: int, *, seed: int = 1, size_range: tuple[int, int] = SIZES, world: World = PLAIN
) -> Path:
    """``n`` scenes as V* Bench: attribute scenes in ``direct_attributes/``, relation ones in
    ``relative_position/``, each ``<id>.jpg`` beside ``<id>.json`` with the right option first."""
    for image, item in _scenes(n, seed, size_range, world):
        folder = root / ("direct_attributes" if item.category == "attribute" else "relative_position")
        folder.mkdir(parents=True, exist_ok=True)
        options = [item.answer, *(o for o in item.options if o != item.answer)]
        image.save(folder / f"{item.id}.jpg", format="JPEG", quality=92)
        meta = {
            "target_object": [t.shape for t in item.targets],
            "bbox": _xywh(item),
            "question": item.question,
            "options": options,
        }
        (folder / f"{item.id}.json").write_text(json.dumps(meta), encoding="utf-8")
    return root


def _jpeg_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_hrbench(
    path: Path,
    n: int,
    *,
    seed: int = 1,
    size_range: tuple[int, int] = SIZES,
    world: World = PLAIN,
    parquet: bool = False,
) -> Path:
    """``n`` attribute scenes as an HR-Bench file (``path``, e.g. ``hr_bench_4k.tsv``): each question four
    times, its right option at A, B, C, D in turn (``cycle_category`` 0-3), the image in base64 JPEG on
    every row; categories alternate single / cross."""
    rows: list[dict[str, Any]] = []
    for q, (image, item) in enumerate(_scenes(n, seed, size_range, world, category="attribute")):
        data = _jpeg_b64(image)
        others = [o for o in item.options if o != item.answer][:3]
        for cycle in range(4):
            options = [*others[:cycle], item.answer, *others[cycle:]]
            rows.append(
                {
                    "index": 4 * q + cycle,
                    "question": item.question,
                    "answer": "ABCD"[cycle],
                    "category": "single" if q % 2 == 0 else "cross",
                    "A": options[0],
                    "B": options[1],
                    "C": options[2],
                    "D": options[3],
                    "cycle_category": str(cycle),
                    "image": data,
                }
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = ["index", "question", "answer", "category", "A", "B", "C", "D", "cycle_category", "image"]
    if parquet:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, delimiter="\t")
            writer.writeheader()
            writer.writerows(rows)
    return path


def write_mme_realworld(
    root: Path, n: int, *, seed: int = 1, size_range: tuple[int, int] = SIZES, world: World = PLAIN
) -> Path:
    """``n`` scenes as MME-RealWorld-Lite: ``MME-RealWorld-Lite.json`` and ``imgs/``, choices ``(A) ...``
    plus ``(E) The image does not feature the content.``, the right letter in ``Ground truth``."""
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    records = []
    for image, item in _scenes(n, seed, size_range, world):
        name = f"{item.id}.png"
        image.save(root / "imgs" / name, format="PNG", compress_level=1)
        options = [*item.options, "The image does not feature the content."]
        records.append(
            {
                "Question_id": f"perception/synthetic/{item.category}/{item.index:04d}",
                "Image": name,
                "Text": item.question,
                "Question Type": "Multiple Choice",
                "Answer choices": [f"({'ABCDE'[i]}) {o}" for i, o in enumerate(options)],
                "Ground truth": "ABCDE"[item.answer_index],
                "Category": item.category,
                "Subtask": "Synthetic " + item.category,
                "Task": "Perception",
            }
        )
    (root / "MME-RealWorld-Lite.json").write_text(json.dumps(records, indent=1), encoding="utf-8")
    return root


def write_jsonl(
    path: Path, n: int, *, seed: int = 1, size_range: tuple[int, int] = SIZES, world: World = PLAIN
) -> Path:
    """``n`` scenes as foveate's question file: images in ``images/`` beside it, boxes as
    ``[x0, y0, x1, y1]``."""
    (path.parent / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for image, item in _scenes(n, seed, size_range, world):
        image.save(path.parent / "images" / f"{item.id}.png", format="PNG", compress_level=1)
        lines.append(
            json.dumps(
                {
                    "id": item.id,
                    "image": f"images/{item.id}.png",
                    "question": item.question,
                    "options": item.options,
                    "answer": item.answer,
                    "category": item.category,
                    "boxes": [list(t.box) for t in item.targets],
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_format(fmt: str, out: Path, n: int, *, seed: int = 1, world: World = PLAIN) -> Path:
    """``n`` scenes in format ``fmt`` under the folder ``out``; returns what ``foveate eval fmt`` reads:
    the folder (V*, MME-RealWorld), ``out/hr_bench_4k.tsv`` (HR-Bench) or ``out/questions.jsonl``."""
    if fmt == "vstar":
        return write_vstar(out, n, seed=seed, world=world)
    if fmt == "hrbench":
        return write_hrbench(out / "hr_bench_4k.tsv", n, seed=seed, world=world)
    if fmt == "mme-realworld":
        return write_mme_realworld(out, n, seed=seed, world=world)
    if fmt == "jsonl":
        return write_jsonl(out / "questions.jsonl", n, seed=seed, world=world)
    raise ValueError(f"no format {fmt!r}; known: manifest, {', '.join(FORMATS)}")
