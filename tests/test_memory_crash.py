"""Crash safety of the insight memory, with real processes: SIGKILL mid-write, two writers, bad files.

A child process adds insights in a loop and prints each id only after ``add`` returned (so after
the commit). Whatever the moment of the kill, every printed id must be found again, in the
database and in the index, and nothing may be half-written.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from foveate.errors import MemoryDatabaseError
from foveate.memory import HashingEmbedder, InsightMemory
from foveate.memory.index import sidecar_path

DIM = 256
ROOT = Path(__file__).resolve().parents[1]

# The writer: bounded, so that it stops by itself if the test dies first.
CHILD = """
import random, sys
from foveate.memory import HashingEmbedder, InsightMemory

database, index, tag, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
rng = random.Random(tag)
words = [f"w{n}" for n in range(2000)]
memory = InsightMemory.open(database, embedder=HashingEmbedder(DIM), index_path=index, save_every=3)
print("ready", flush=True)
for i in range(count):
    body = " ".join(rng.sample(words, 8))
    result = memory.add(f"{tag} lesson {i}: {body}", "tip")
    print(result.insight.id, flush=True)
memory.close()
""".replace("DIM", str(DIM))


def writer(database: str, index: Path, tag: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, database, str(index), tag, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def check_consistent(memory: InsightMemory, printed: set[int]) -> None:
    """Every printed id is live in the database and in the index, and every row is whole."""
    stored = {i.id: i for i in memory.insights()}
    assert printed <= set(stored), sorted(printed - set(stored))
    assert sorted(memory.index.ids().tolist()) == sorted(stored)
    assert len(memory.index) == len(memory)
    for insight in stored.values():
        tag, _, rest = insight.text.partition(" lesson ")
        number, _, body = rest.partition(": ")
        assert tag and number.isdigit() and len(body.split()) == 8, insight.text
        # the stored vector is the whole vector of this very text
        hit = memory.search(insight.text, k=1)[0]
        assert hit.insight.id == insight.id and hit.score == pytest.approx(1.0, abs=1e-5)


def test_sigkill_mid_loop_loses_nothing_committed(database: str, tmp_path: Path) -> None:
    index = tmp_path / "memory.faiss"
    child = writer(database, index, "killed", 100_000)
    printed: set[int] = set()
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready", child.stderr.read() if child.stderr else ""
        deadline = time.monotonic() + 60
        while len(printed) < 40 and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, child.stderr.read() if child.stderr else "child ended"
            printed.add(int(line))
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL and len(printed) >= 40
    with InsightMemory.open(database, embedder=HashingEmbedder(DIM), index_path=index) as memory:
        check_consistent(memory, printed)
        # at most the one insight committed between the last print and the kill is not printed
        assert len(memory) - len(printed) <= 1
    assert not list(tmp_path.glob(".memory.faiss.*.tmp"))  # a killed save's temp file was cleared
    sidecar = json.loads(sidecar_path(index).read_text())
    assert sidecar["count"] == len(memory)


# A writer killed at a chosen step of its third write (InsightMemory's on_write_step hook).
KILLED_AT = """
import os, signal, sys
from foveate.memory import HashingEmbedder, InsightMemory

database, index, point = sys.argv[1], sys.argv[2], sys.argv[3]
writes = {"n": 0}

def hook(step):
    if step == "before_commit":
        writes["n"] += 1
    if writes["n"] == 3 and step == point:
        os.kill(os.getpid(), signal.SIGKILL)

memory = InsightMemory.open(
    database, embedder=HashingEmbedder(DIM), index_path=index, save_every=1, on_write_step=hook
)
for i in range(3):
    memory.add(f"write {i}: lesson number {i} about small red cars", "tip")
    print(i, flush=True)
""".replace("DIM", str(DIM))


@pytest.mark.parametrize(
    ("point", "how", "kept"),
    [
        ("before_commit", "loaded", 2),  # rolled back: the file already matches the database
        ("committed", "caught_up", 3),  # in the database, not in the file: replayed from it
        ("index_written", "loaded", 3),  # in both: nothing to do
    ],
)
def test_a_kill_at_each_write_step_is_recovered_as_that_step_requires(
    database: str, tmp_path: Path, point: str, how: str, kept: int
) -> None:
    """Killed before the commit, between the commit and the index file, or after it: the reopen says how it
    recovered (``InsightMemory.opened``): nothing to do, a catch-up of exactly the one committed write, or
    nothing again; never a rebuild, which is for a file that cannot be trusted (last case below)."""
    index = tmp_path / "memory.faiss"
    child = subprocess.run(
        [sys.executable, "-c", KILLED_AT, database, str(index), point],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.split() == ["0", "1"]  # the third write never returned
    with InsightMemory.open(database, embedder=HashingEmbedder(DIM), index_path=index) as memory:
        assert (memory.opened.how, memory.opened.applied) == (how, 1 if how == "caught_up" else 0)
        assert len(memory) == kept
        check_consistent_texts(memory, kept)
    index.write_bytes(b"not an index")  # a file that cannot be trusted: rebuilt, and said so
    with InsightMemory.open(database, embedder=HashingEmbedder(DIM), index_path=index) as memory:
        assert memory.opened.how == "rebuilt" and memory.opened.reason
        check_consistent_texts(memory, kept)


def check_consistent_texts(memory: InsightMemory, kept: int) -> None:
    texts = sorted(i.text for i in memory.insights())
    assert [t.split(":")[0] for t in texts] == [f"write {i}" for i in range(kept)]
    assert sorted(memory.index.ids().tolist()) == sorted(i.id for i in memory.insights())
    for text_ in texts:
        assert memory.search(text_, k=1)[0].insight.text == text_


def test_two_processes_writing_at_once_lose_nothing(database: str, tmp_path: Path) -> None:
    index = tmp_path / "memory.faiss"
    children = [writer(database, index, tag, 30) for tag in ("left", "right")]
    printed: set[int] = set()
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        ids = [int(line) for line in out.split()[1:]]
        assert len(ids) == 30
        printed |= set(ids)
    assert len(printed) == 60  # no id handed out twice
    with InsightMemory.open(database, embedder=HashingEmbedder(DIM), index_path=index) as memory:
        check_consistent(memory, printed)
        assert len(memory) == 60


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    content = b"these are my notes, not a database\n" * 50
    path.write_bytes(content)
    with pytest.raises(MemoryDatabaseError, match=str(path)) as info:
        InsightMemory.open(path, embedder=HashingEmbedder(DIM))
    assert "not a SQLite database" in str(info.value)
    assert path.read_bytes() == content and sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


def test_a_corrupt_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with InsightMemory.open(path, embedder=HashingEmbedder(DIM), index_path=False) as memory:
        memory.add("an insight worth keeping", "tip")
    data = bytearray(path.read_bytes())
    data[100:4096] = os.urandom(4096 - 100)  # the header survives, the schema page does not
    path.write_bytes(bytes(data))
    with pytest.raises(MemoryDatabaseError, match=str(path)):
        InsightMemory.open(path, embedder=HashingEmbedder(DIM), index_path=False)
    assert path.read_bytes() == bytes(data)


def test_another_programs_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    before = path.read_bytes()
    with pytest.raises(MemoryDatabaseError, match=r"customers.*not a foveate memory"):
        InsightMemory.open(path, embedder=HashingEmbedder(DIM), index_path=False)
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == [
            "customers"
        ]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    InsightMemory.open(path, embedder=HashingEmbedder(DIM), index_path=False).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(MemoryDatabaseError, match="9999"):
        InsightMemory.open(path, embedder=HashingEmbedder(DIM), index_path=False)


def test_sqlite_settings(tmp_path: Path) -> None:
    with InsightMemory.open(tmp_path / "m.db", embedder=HashingEmbedder(DIM), index_path=False) as memory:
        with memory.store.engine.connect() as conn:
            pragmas = {
                p: conn.exec_driver_sql(f"PRAGMA {p}").scalar() for p in ("journal_mode", "foreign_keys")
            }
            timeout = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        assert pragmas == {"journal_mode": "wal", "foreign_keys": 1} and timeout and timeout >= 1000
        run = memory.record_run("q")
        memory.add("from a run", run_id=run.id)
        assert np.isfinite(memory.search("from a run", k=1)[0].score)
