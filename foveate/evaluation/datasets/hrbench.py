"""HR-Bench 4K / 8K as ``DreamMr/HR-Bench`` distributes it: ``hr_bench_4k.tsv`` (or ``.parquet``) with the
columns ``index``, ``question``, ``answer`` (a letter), ``category`` (``single`` or ``cross``), ``A``-``D``,
``cycle_category`` and ``image`` (a base64 JPEG; a value of 64 characters or fewer names the ``index`` of the
row whose image it shares, as VLMEvalKit reads it).

Each question appears four times, its right option moved through A-D (``cycle_category`` 0-3). The
official evaluation averages accuracy over the four cycles, which, the cycles being the same size, is the
accuracy over all rows: so every row is one question here, and a question need not be right in all four
cycles. Splits are ``4K single``, ``4K cross``, ``8K single``, ``8K cross`` (the size from the file name).
The images are written out once (``images_dir/<file stem>/<index>.jpg``) so that a run reads them as
files; a file already there is reused.
"""

from __future__ import annotations

import base64
import binascii
import csv
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from foveate.errors import DatasetFormatError
from foveate.evaluation.datasets.question import BenchQuestion

__all__ = ["COLUMNS", "load_hrbench"]

COLUMNS = ("index", "question", "answer", "category", "A", "B", "C", "D", "image")
LETTERS = ("A", "B", "C", "D")


def hrbench_files(path: Path) -> list[Path]:
    """The HR-Bench files a path stands for: the file itself, or a folder's ``hr_bench_*.tsv|parquet``
    (a TSV preferred over the parquet of the same name)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DatasetFormatError(f"no HR-Bench file or folder {path}")
    found: dict[str, Path] = {}
    for file in sorted(path.glob("hr_bench_*")):
        if file.suffix in {".tsv", ".parquet"} and (file.stem not in found or file.suffix == ".tsv"):
            found[file.stem] = file
    if not found:
        raise DatasetFormatError(f"{path} holds no hr_bench_4k.tsv / hr_bench_8k.tsv (or .parquet)")
    return list(found.values())


def load_hrbench(path: str | Path, *, images_dir: Path, limit: int | None = None) -> list[BenchQuestion]:
    """The rows of HR-Bench files (a ``.tsv``, a ``.parquet``, or a folder of them), ``limit`` per file."""
    out: list[BenchQuestion] = []
    for file in hrbench_files(Path(path)):
        size = _size(file)
        folder = images_dir / file.stem
        shared: dict[str, Path] = {}
        for row_no, row in islice(enumerate(_rows(file), start=2), limit):
            out.append(_question(row, file, row_no, size, folder, shared))
    return out


def _size(file: Path) -> str:
    for size in ("4k", "8k"):
        if size in file.stem.lower():
            return size.upper()
    return file.stem


def _rows(file: Path) -> Iterator[dict[str, Any]]:
    if file.suffix == ".parquet":
        yield from _parquet_rows(file)
        return
    csv.field_size_limit(sys.maxsize)  # a row holds a whole 8K image in base64
    try:
        with file.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t")
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise DatasetFormatError(
                    f"{file} is not an HR-Bench TSV: no column {missing[0]!r} (has {reader.fieldnames})"
                )
            yield from reader
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetFormatError(f"cannot read {file} as HR-Bench TSV: {exc}") from None


def _parquet_rows(file: Path) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetFormatError(
            f"reading {file} needs pyarrow (pip install 'foveate[eval]'), or use the .tsv"
        ) from None
    try:
        table = pq.ParquetFile(file)
        names = table.schema_arrow.names
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise DatasetFormatError(
                f"{file} is not HR-Bench parquet: no column {missing[0]!r} (has {names})"
            )
        for batch in table.iter_batches(batch_size=16):
            yield from batch.to_pylist()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DatasetFormatError(f"cannot read {file} as HR-Bench parquet: {exc}") from None


def _question(
    row: dict[str, Any], file: Path, row_no: int, size: str, folder: Path, shared: dict[str, Path]
) -> BenchQuestion:
    where = f"{file}:{row_no}"
    index = str(row.get("index", "")).strip()
    if not index:
        raise DatasetFormatError(f"{where}: no index")
    letter = str(row.get("answer", "")).strip()
    if letter not in LETTERS:
        raise DatasetFormatError(f"{where}: answer {letter!r} is not one of A, B, C, D")
    category = str(row.get("category", "")).strip()
    image = _image_file(row.get("image"), folder, index, shared, where)
    options = [str(row[c]).strip() for c in LETTERS]
    try:
        return BenchQuestion(
            id=f"{size}/{index}",
            image=image,
            question=str(row["question"]).strip(),
            options=options,
            answer=options[LETTERS.index(letter)],
            split=f"{size} {category}".strip(),
            category=category or None,
        )
    except ValidationError as exc:
        raise DatasetFormatError(f"{where}: {exc.errors()[0]['msg']}") from None


def _image_file(value: Any, folder: Path, index: str, shared: dict[str, Path], where: str) -> Path:
    if isinstance(value, dict):  # a datasets-style image struct
        value = value.get("bytes")
    if isinstance(value, str) and len(value) <= 64:  # VLMEvalKit: the index of the row holding the image
        if value not in shared:
            raise DatasetFormatError(
                f"{where}: image refers to row index {value!r}, which comes later or not at all"
            )
        shared[index] = shared[value]
        return shared[value]
    if isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=False)
        except (binascii.Error, ValueError) as exc:
            raise DatasetFormatError(f"{where}: image is not base64 ({exc})") from None
    elif isinstance(value, bytes):
        data = value
    else:
        raise DatasetFormatError(f"{where}: no image (base64 text expected)")
    if not data:
        raise DatasetFormatError(f"{where}: the image is empty")
    suffix = ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg"
    path = folder / f"{index}{suffix}"
    if not (path.is_file() and path.stat().st_size == len(data)):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    shared[index] = path
    return path
