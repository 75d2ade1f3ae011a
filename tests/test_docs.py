"""Every fenced Python block in README.md and docs/*.md runs, as written (issue 26, item 6).

The blocks of one page run in order in one namespace (a later block may use an earlier one's ``vlm``), in
a folder holding the files they name (``scene.png``, ``page.png``, ``mine.jsonl``...) and with ``HOME`` there,
so ``~/.foveate`` is the test's. A ```` ```yaml title="NAME" ```` block is written to NAME first.

What is swapped, and only this (as smolagents tests its docs): a GPU model's name becomes the shipped tiny
VLM, and its family the tiny VLM's; a server URL becomes a local stand-in for an OpenAI-compatible server
(``fake_openai_server``); a PostgreSQL URL becomes ``$FOVEATE_TEST_DATABASE_URL`` when set, else a SQLite
file. Everything else runs as a reader would paste it."""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fake_openai_server import FakeServer, serving

from foveate.synthetic import generate_scene
from foveate.tiny_vlm import TINY_VLM_PATH

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.S | re.M)
PG_URL = os.environ.get("FOVEATE_TEST_DATABASE_URL")
# what the stand-in server lists as a first token's alternatives: the probes' words and the options asked
WORDS = {"Yes", "No", "red", "green", "blue", "yellow"}


def blocks(page: Path, language: str) -> list[tuple[int, str, str]]:
    """(line, fence options, code) of each block in ``language``."""
    text = page.read_text()
    return [
        (text[: m.start()].count("\n") + 1, m.group(2).strip(), m.group(3))
        for m in FENCE.finditer(text)
        if m.group(1) == language
    ]


PYTHON_PAGES = [p for p in PAGES if blocks(p, "python")]


def test_the_pages_have_python_to_run() -> None:
    names = {p.name for p in PYTHON_PAGES}
    assert {"README.md", "concepts.md", "workflows.md", "real-models.md", "serving.md"} <= names
    assert sum(len(blocks(p, "python")) for p in PYTHON_PAGES) >= 10


def swapped(code: str, server: str) -> str:
    swaps = {
        "Qwen/Qwen2.5-VL-7B-Instruct": str(TINY_VLM_PATH),
        'family="qwen2_5_vl"': 'family="foveate-tiny"',
        "http://127.0.0.1:8000/v1": server,
        "http://gpu-host:8000/v1": server,
        # the memory refuses a database holding other tables, and the test server's one database holds the
        # calibration tests' tables: the memory gets a file here (PostgreSQL memory: tests/test_memory.py)
        "postgresql+psycopg://foveate@db/foveate_memory": "memory.db",
        "postgresql://foveate@db/foveate_runs": PG_URL or "runs.db",
    }
    for was, now in swaps.items():
        code = code.replace(was, now)
    return code


@pytest.fixture(scope="module")
def reader_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files the snippets name, made once: a scene under four names, and labelled questions."""
    folder = tmp_path_factory.mktemp("reader")
    image, _ = generate_scene(3, 0)
    for name in ("scene.png", "page.png", "a.png", "b.png"):
        image.save(folder / name)
    with (folder / "mine.jsonl").open("w") as out:  # labelled questions for calibrating a gate
        for index in range(24):
            picture, question = generate_scene(5, index, size_range=(448, 640))
            picture.save(folder / f"q{index}.png")
            row = {"image": f"q{index}.png", "question": question.question, "answer": question.answer}
            out.write(json.dumps({**row, "options": question.options}) + "\n")
            WORDS.update(question.options)
    return folder


@pytest.fixture
def reader_folder(reader_files: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh copy of those files, as the reader's working directory and home."""
    folder = tmp_path / "reader"
    shutil.copytree(reader_files, folder)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.setenv("FOVEATE_CONFIG", str(folder / "none.toml"))
    monkeypatch.setenv("FOVEATE_CACHE", str(folder / "cache"))
    for name in ("FOVEATE_MODEL", "FOVEATE_ENDPOINT", "FOVEATE_MEMORY_DB", "FOVEATE_CHECKPOINTS"):
        monkeypatch.delenv(name, raising=False)
    yield folder


@pytest.mark.parametrize("page", PYTHON_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_python_block_runs(page: Path, reader_folder: Path) -> None:
    for _line, options, code in blocks(page, "yaml"):
        named = re.search(r'title="([^"]+)"', options)
        if named:
            (reader_folder / named[1]).write_text(code)
    namespace: dict[str, object] = {"__name__": "__doc_snippet__"}
    stand_in = FakeServer("blue", [-0.1, -0.2], top_tokens=sorted(WORDS))
    with contextmanager(serving)(stand_in) as fake:
        for line, _options, code in blocks(page, "python"):
            where = f"{page.relative_to(ROOT)}:{line}"
            program = compile(swapped(code, fake.url), where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
            try:
                pending = eval(program, namespace)  # our own docs: running them is the point
                if asyncio.iscoroutine(pending):  # a block with a top-level await
                    asyncio.run(pending)
            except Exception as exc:
                raise AssertionError(f"the block at {where} fails as written: {exc!r}") from exc
