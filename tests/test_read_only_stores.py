"""Stores that can only be read (a read-only mount, another user's folder): a memory is still listed,
searched and exported, a gate still looked up, and nothing about them changes; the commands that write say
in one line why they cannot (issue 25: "a memory database in a read-only folder cannot even be listed")."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foveate.cli.main import app
from foveate.conformal.answer_gate import GateKey
from foveate.conformal.procedure import find_gate
from foveate.conformal.records import CalibrationStore
from foveate.errors import CalibrationStoreError, InsightMemoryError, MemoryDatabaseError
from foveate.memory import HashingEmbedder, InsightMemory

TIPS = ["Small red squares hide in corners; zoom there first.", "Read chart axes before the bars."]
runner = CliRunner()


def _files(folder: Path) -> dict[str, str]:
    """Every file in the folder and a hash of its bytes: what 'nothing changed' means here."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _fill(folder: Path) -> Path:
    db = folder / "memory.db"
    with InsightMemory(db, embedder=HashingEmbedder()) as memory:
        for tip in TIPS:
            memory.add(tip)
    return db


def _read_only(folder: Path, tmp_path: Path) -> Iterator[Path]:
    """``folder`` as a folder this process cannot write: a read-only bind mount when running as root (root
    ignores permission bits), the folder's write bits taken away otherwise."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield folder
        finally:
            folder.chmod(0o755)
        return
    mounted = tmp_path / f"{folder.name}-mounted"
    mounted.mkdir()
    if subprocess.run(["mount", "--bind", str(folder), str(mounted)], capture_output=True).returncode:
        pytest.skip("running as root without the right to mount: no read-only folder to test in")
    try:
        remount = ["mount", "-o", "remount,bind,ro", str(mounted)]
        if subprocess.run(remount, capture_output=True).returncode:
            pytest.skip("cannot remount read-only here")
        yield mounted
    finally:  # lazily: a mount left behind would also stop pytest removing its temporary folders
        subprocess.run(["umount", "-l", str(mounted)], capture_output=True)


@pytest.fixture
def read_only_memory(tmp_path: Path) -> Iterator[Path]:
    """A filled memory in a folder this process cannot write."""
    folder = tmp_path / "memory"
    folder.mkdir()
    _fill(folder)
    for mounted in _read_only(folder, tmp_path):
        yield mounted / "memory.db"


@pytest.fixture
def read_only_calibrations(tmp_path: Path) -> Iterator[Path]:
    """A calibration database (no gate in it) and a foreign SQLite file, in a folder this process cannot
    write."""
    folder = tmp_path / "calibrations"
    folder.mkdir()
    CalibrationStore(folder / "calibrations.db").close()
    with sqlite3.connect(folder / "blank.db") as blank:
        blank.execute("PRAGMA user_version = 1")
    blank.close()
    with sqlite3.connect(folder / "foreign.db") as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
    conn.close()
    yield from _read_only(folder, tmp_path)


def test_a_read_only_memory_is_listed_searched_and_exported(
    read_only_memory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    folder = read_only_memory.parent
    with pytest.raises(OSError):  # the folder really is read-only for this process
        (folder / "probe").write_text("x")
    before = _files(folder)
    db = ["--db", str(read_only_memory)]
    listed = runner.invoke(app, ["memory", "ls", *db])
    assert listed.exit_code == 0, listed.output
    assert "2 of 2 insights" in listed.output
    exported = runner.invoke(app, ["memory", "export", "-", *db])
    assert exported.exit_code == 0 and all(tip in exported.output for tip in TIPS), exported.output
    found = runner.invoke(app, ["memory", "search", "where do red squares hide?", *db])
    assert found.exit_code == 0 and "corners" in found.output, found.output
    removed = runner.invoke(app, ["memory", "rm", "1", *db])
    assert removed.exit_code == 2 and "Traceback" not in removed.output
    assert f"cannot write in {folder}" in removed.output and removed.output.strip().count("\n") == 0
    assert _files(folder) == before


def test_read_only_opening_writes_nothing_and_refuses_writes(tmp_path: Path) -> None:
    db = _fill(tmp_path)
    before = _files(tmp_path)
    with InsightMemory(db, embedder=HashingEmbedder(), read_only=True) as memory:
        assert [hit.insight.text for hit in memory.search("red squares in corners", k=1)] == TIPS[:1]
        with pytest.raises(InsightMemoryError, match="opened read-only"):
            memory.add("A third tip.")
    assert _files(tmp_path) == before  # no -wal / -shm left behind, index file untouched
    with pytest.raises(MemoryDatabaseError):  # never creates a database
        InsightMemory(tmp_path / "none.db", embedder=HashingEmbedder(), read_only=True)
    assert not (tmp_path / "none.db").exists()


def test_a_database_without_a_memory_is_not_given_one_by_a_read(tmp_path: Path) -> None:
    """A SQLite file with no schema would be given one by a writing open; a read-only open refuses it and
    leaves the file as it was."""
    db = tmp_path / "memory.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    before = _files(tmp_path)
    with pytest.raises(MemoryDatabaseError, match="holds no foveate memory"):
        InsightMemory(db, embedder=HashingEmbedder(), read_only=True)
    assert _files(tmp_path) == before


def test_gates_are_looked_up_in_a_read_only_calibration_database(read_only_calibrations: Path) -> None:
    """Looking a gate up writes nothing (before: the tables were created on open, in any file)."""
    before = _files(read_only_calibrations)
    key = GateKey(
        model_id="m",
        model_fingerprint="id:m",
        workflow="direct",
        workflow_sha256="0" * 64,
        strategy="none",
        budget="{}",
    )
    with pytest.raises(CalibrationStoreError, match="no lac calibration at alpha 0.1"):
        find_gate(str(read_only_calibrations / "calibrations.db"), key, 0.1, "lac")
    with pytest.raises(CalibrationStoreError, match=r"foreign\.db holds other tables \(notes\)"):
        find_gate(str(read_only_calibrations / "foreign.db"), key, 0.1, "lac")
    assert _files(read_only_calibrations) == before
    with pytest.raises(CalibrationStoreError, match="no lac calibration"):  # no tables yet: none stored
        find_gate(str(read_only_calibrations / "blank.db"), key, 0.1, "lac")
