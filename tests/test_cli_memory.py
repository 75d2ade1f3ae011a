"""``foveate memory``: ls / search / rm / export through the CLI on a real database (hashing embedder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from foveate.cli.main import app
from foveate.memory import HashingEmbedder, InsightMemory

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "memory.db"
    with InsightMemory.open(path, embedder=HashingEmbedder()) as memory:
        memory.add("zoom in to count small red cars", kind="perception_lesson")
        memory.add("the clock tower is left of the bridge")
        memory.add("blue bikes hide in shadows")
    return path


def _ids(memory_db: Path) -> dict[str, int]:
    with InsightMemory.open(memory_db, embedder=HashingEmbedder(), index_path=False) as memory:
        return {i.text: i.id for i in memory.insights()}


def test_memory_round_trip(db: Path, tmp_path: Path) -> None:
    ids = _ids(db)

    listed = runner.invoke(app, ["memory", "ls", "--db", str(db)])
    assert listed.exit_code == 0, listed.output
    assert "3 of 3 insights" in listed.output and "perception_lesson" in listed.output

    found = runner.invoke(app, ["memory", "search", "how many red cars", "--db", str(db), "--k", "1"])
    assert found.exit_code == 0, found.output
    assert "1 insights (embedder: hashing-256)" in found.output
    assert "cars" in found.output and "bridge" not in found.output and "bikes" not in found.output

    removed = runner.invoke(app, ["memory", "rm", str(ids["blue bikes hide in shadows"]), "--db", str(db)])
    assert removed.exit_code == 0, removed.output
    assert "deleted 1 insight" in removed.output

    out = tmp_path / "out" / "insights.jsonl"
    out.parent.mkdir()
    exported = runner.invoke(app, ["memory", "export", str(out), "--db", str(db)])
    assert exported.exit_code == 0, exported.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["text"] for r in rows) == sorted(t for t in ids if "bikes" not in t)
    assert {r["id"] for r in rows} == {i for t, i in ids.items() if "bikes" not in t}

    with_deleted = runner.invoke(app, ["memory", "ls", "--db", str(db), "--include-deleted"])
    assert with_deleted.exit_code == 0 and "2 of 3" not in with_deleted.output
    assert "3 of 3 insights" in with_deleted.output and "(deleted)" in with_deleted.output


def test_rm_with_an_unknown_id_deletes_nothing(db: Path) -> None:
    ids = _ids(db)
    known = min(ids.values())
    result = runner.invoke(app, ["memory", "rm", str(known), "999", "--db", str(db)])
    assert result.exit_code == 2
    assert "no insight 999" in result.output and "Traceback" not in result.output
    assert sorted(_ids(db).values()) == sorted(ids.values())  # the known one is still there


@pytest.mark.parametrize(
    "args",
    [["ls"], ["search", "red cars", "--embedder", "hashing"], ["export", "OUT"], ["rm", "1"]],
)
def test_commands_on_a_missing_database_fail_and_create_nothing(tmp_path: Path, args: list[str]) -> None:
    missing = tmp_path / "nope" / "memory.db"
    args = [str(tmp_path / "out.jsonl") if a == "OUT" else a for a in args]
    result = runner.invoke(app, ["memory", *args, "--db", str(missing)])
    assert result.exit_code == 2
    assert "no memory database at" in result.output and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # no database, no folder, no export file


def test_default_database_comes_from_the_environment(
    db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOVEATE_MEMORY_DB", str(db))
    result = runner.invoke(app, ["memory", "ls"])
    assert result.exit_code == 0 and "3 of 3 insights" in result.output
    monkeypatch.setenv("FOVEATE_MEMORY_DB", str(tmp_path / "elsewhere.db"))
    result = runner.invoke(app, ["memory", "ls"])
    assert result.exit_code == 2 and "FOVEATE_MEMORY_DB" in result.output
    assert not (tmp_path / "elsewhere.db").exists()


def test_search_with_another_embedder_is_a_clear_error(db: Path) -> None:
    result = runner.invoke(app, ["memory", "search", "cars", "--db", str(db), "--embedder", "hashing-64"])
    assert result.exit_code == 2
    assert "hashing-256" in result.output and "Traceback" not in result.output


def test_memory_commands_never_cross_namespaces(db: Path, tmp_path: Path) -> None:
    """Two namespaces in one database (issue 24 item 5): ls, search, export and rm of one never show or
    touch the other's insights; namespaces lists both; drop-namespace deletes one and leaves the other."""
    with InsightMemory.open(db, embedder=HashingEmbedder(), namespace="bob") as memory:
        bob_id = memory.add("zoom in to count small red cars on the bridge").insight.id
        memory.record_run("how many red cars?", "3")
    ids = _ids(db)  # the default namespace's three
    bob = ["--namespace", "bob", "--db", str(db)]

    listed = runner.invoke(app, ["memory", "ls", "--json", *bob])
    assert listed.exit_code == 0, listed.output
    assert [json.loads(line)["id"] for line in listed.output.splitlines()] == [bob_id]
    found = runner.invoke(app, ["memory", "search", "red cars", "--k", "5", "--json", *bob])
    assert [json.loads(line)["id"] for line in found.output.splitlines()] == [bob_id], found.output
    found_default = runner.invoke(
        app, ["memory", "search", "red cars", "--k", "5", "--json", "--db", str(db)]
    )
    assert bob_id not in [json.loads(line)["id"] for line in found_default.output.splitlines()]
    out = tmp_path / "bob.jsonl"
    assert runner.invoke(app, ["memory", "export", str(out), *bob]).exit_code == 0
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == [bob_id]
    crossed = runner.invoke(app, ["memory", "rm", str(ids["blue bikes hide in shadows"]), *bob])
    assert crossed.exit_code != 0 and "no insight" in crossed.output  # the default's id, unknown to bob

    spaces = runner.invoke(app, ["memory", "namespaces", "--json", "--db", str(db)])
    counts = {c["namespace"]: (c["insights"], c["runs"]) for c in map(json.loads, spaces.output.splitlines())}
    assert counts == {"bob": (1, 1), "default": (3, 0)}
    typo = runner.invoke(app, ["memory", "drop-namespace", "bobb", "--yes", "--db", str(db)])
    assert typo.exit_code != 0 and "no namespace bobb" in typo.output and "nothing deleted" in typo.output
    dropped = runner.invoke(app, ["memory", "drop-namespace", "bob", "--yes", "--db", str(db)])
    assert dropped.exit_code == 0 and "1 insights and 1 runs" in dropped.output, dropped.output
    assert sorted(_ids(db).values()) == sorted(ids.values())
    spaces = runner.invoke(app, ["memory", "namespaces", "--json", "--db", str(db)])
    assert [json.loads(line)["namespace"] for line in spaces.output.splitlines()] == ["default"]
