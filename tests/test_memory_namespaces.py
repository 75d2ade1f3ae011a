"""Namespaces in the insight memory (issue 24): several users or projects in one database, apart.

Two namespaces share one database, and neither's recall, export, listing, run log, feedback or ``foveate
memory`` commands ever return the other's rows; the same text in both is two insights, not one merged;
deleting a namespace leaves the others whole; writers in two namespaces at once (threads, and processes)
each end with exactly their own rows and an index of only those; a database from before namespaces
(schema 0001) opens with its rows in "default", and its index file is still used. Every test that opens a
database runs on a SQLite file, and on PostgreSQL when FOVEATE_TEST_DATABASE_URL names a server
(``.ci/postgres.sh`` starts a throwaway one).
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import os
import subprocess
import sys
import threading
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from foveate.cli.main import app
from foveate.databases import as_url
from foveate.errors import InsightMemoryError
from foveate.memory import (
    HashingEmbedder,
    InsightMemory,
    NamespaceCounts,
    NamespaceError,
    SentenceTransformerEmbedder,
    list_namespaces,
)
from foveate.memory.index import VectorIndex, sidecar_path

DIM = 256
ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def is_sqlite(database: str) -> bool:
    return not database.startswith("postgresql")


def index_for(database: str, tmp_path: Path, namespace: str) -> Path | None:
    """Each namespace's index file: the default one beside a SQLite file (None), a file of its own in the
    test's folder for PostgreSQL (which has none by default)."""
    return None if is_sqlite(database) else tmp_path / f"pg-{namespace}.faiss"


def index_file_of(memory: InsightMemory) -> Path:
    assert memory.index_path is not None
    return memory.index_path


def open_memory(database: str, tmp_path: Path, namespace: str, **kwargs: Any) -> InsightMemory:
    kwargs.setdefault("embedder", HashingEmbedder(DIM))
    kwargs.setdefault("index_path", index_for(database, tmp_path, namespace))
    return InsightMemory.open(database, namespace=namespace, **kwargs)


def everything(memory: InsightMemory) -> dict[str, Any]:
    """What a namespace shows through every way of reading it."""
    out = io.StringIO()
    memory.export(out, include_deleted=True)
    return {
        "insights": sorted(i.id for i in memory.insights(include_deleted=True)),
        "exported": sorted(json.loads(line)["id"] for line in out.getvalue().splitlines()),
        "runs": sorted(r.id for r in memory.runs()),
        "index": sorted(memory.index.ids().tolist()),
        "namespaces": {i.namespace for i in memory.insights(include_deleted=True)}
        | {r.namespace for r in memory.runs()},
    }


# -- names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["", " ", "a b", "-x", ".", "..", "a/b", "a\\b", "x" * 129, "ünïcode", "tab\t", "nl\n", 7]
)
def test_a_bad_namespace_name_is_refused_naming_it_before_anything_opens(tmp_path: Path, name: Any) -> None:
    with pytest.raises(NamespaceError, match="is not a valid memory namespace") as info:
        InsightMemory(tmp_path / "memory.db", namespace=name, embedder=HashingEmbedder(DIM))
    assert repr(name) in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, InsightMemoryError)
    assert list(tmp_path.iterdir()) == []  # no database was made


@pytest.mark.parametrize("name", ["default", "alice", "Project-7", "team.a_b-c", "0", "x" * 128])
def test_good_namespace_names_are_taken_as_they_are(tmp_path: Path, name: str) -> None:
    with InsightMemory(tmp_path / "memory.db", namespace=name, embedder=HashingEmbedder(DIM)) as memory:
        assert memory.namespace == name
        assert memory.add("a lesson").insight.namespace == name
    suffix = ".faiss" if name == "default" else f".{name}.faiss"
    assert (tmp_path / f"memory.db{suffix}").is_file()


# -- apart ----------------------------------------------------------------------------------------


def test_two_namespaces_in_one_database_never_see_each_others_rows(
    database: str, tmp_path: Path, minilm: SentenceTransformerEmbedder
) -> None:
    alice = open_memory(database, tmp_path, "alice", embedder=minilm)
    bob = open_memory(database, tmp_path, "bob", embedder=minilm)
    try:
        bob_run = bob.record_run("How many birds are on the wire?", answer="4", correct=False)
        bob_zoom = bob.add(
            "Zoom into a crop before counting small objects", "perception_lesson", run_id=bob_run.id
        ).insight
        bob_signs = bob.add("Read text on signs from a high-resolution crop of the sign").insight
        alice_run = alice.record_run("Which side is the dog on?", answer="left")
        alice_ids = [
            alice.add(t, k, run_id=alice_run.id).insight.id
            for t, k in [
                ("Left and right are from the viewer's side, not the subject's", "task_relation"),
                ("Answering before looking at the image led to a wrong colour", "failure"),
            ]
        ]
        # the same text in both namespaces is an insight in each, never merged across
        shared = "Charts need their legend read before their bars"
        in_bob = bob.add(shared, "tip")
        in_alice = alice.add(shared, "tip")
        assert not in_bob.merged and not in_alice.merged and in_alice.insight.id != in_bob.insight.id
        alice_ids.append(in_alice.insight.id)
        bob_ids = [bob_zoom.id, bob_signs.id, in_bob.insight.id]
        assert alice.add(shared, "tip").merged  # within a namespace it still merges

        # recall: bob's zoom lesson is by far the closest to the question, and alice never gets it
        ducks = "how many ducks are swimming in the pond"
        assert bob.search(ducks, k=1)[0].insight.id == bob_zoom.id
        hits = alice.search(ducks, k=10)
        assert sorted(h.insight.id for h in hits) == sorted(alice_ids)
        assert {h.insight.namespace for h in hits} == {"alice"}
        assert alice.search(ducks, k=10, exclude_run_id=bob_run.id) == hits  # bob's run is not alice's
        assert [h.insight.id for h in alice.search(shared, k=1)] == [in_alice.insight.id]
        assert [h.insight.id for h in bob.search(shared, k=1)] == [in_bob.insight.id]

        # by id: the other's insights and runs are not there
        assert alice.get(bob_zoom.id) is None and alice.get_run(bob_run.id) is None
        assert bob.get(alice_ids[0]) is None and bob.get_run(alice_run.id) is None
        with pytest.raises(InsightMemoryError, match=f"no insight {bob_zoom.id}"):
            alice.update(bob_zoom.id, text="rewritten by alice")
        with pytest.raises(InsightMemoryError, match=f"no run {bob_run.id}"):
            alice.set_feedback(bob_run.id, correct=True, feedback="alice says so")
        with pytest.raises(InsightMemoryError, match=f"no run {bob_run.id}"):
            alice.add("a lesson drawn from bob's run", run_id=bob_run.id)
        assert alice.delete(bob_ids) == 0
        alice.mark_used(bob_ids, helpful=True)
        alice.mark_helpful(bob_ids)

        # counts and listings
        assert len(alice) == 3 and len(bob) == 3
        a, b = everything(alice), everything(bob)
        assert a == {
            "insights": sorted(alice_ids),
            "exported": sorted(alice_ids),
            "runs": [alice_run.id],
            "index": sorted(alice_ids),
            "namespaces": {"alice"},
        }
        assert b == {
            "insights": sorted(bob_ids),
            "exported": sorted(bob_ids),
            "runs": [bob_run.id],
            "index": sorted(bob_ids),
            "namespaces": {"bob"},
        }
        for insight in bob.insights():  # alice's deletes, updates and counters never reached bob's rows
            assert not insight.deleted and insight.times_used == insight.times_helpful == 0
        assert bob.get(bob_zoom.id).text == "Zoom into a crop before counting small objects"  # type: ignore[union-attr]
        assert bob.get_run(bob_run.id) == bob_run  # feedback untouched

        # deletes and purges stay within the namespace
        bob.delete(bob_signs.id)
        assert alice.purge() == 0 and bob.get(bob_signs.id) is not None
        assert bob.purge() == 1

        # the default namespace of the same database is empty
        with open_memory(database, tmp_path, "default", embedder=minilm) as default:
            assert len(default) == 0 and list(default.runs()) == [] and default.search(ducks, k=5) == []
        assert list_namespaces(database) == [
            NamespaceCounts(namespace="alice", insights=3, deleted_insights=0, runs=1),
            NamespaceCounts(namespace="bob", insights=2, deleted_insights=0, runs=1),
        ]
        assert alice.counts() == list_namespaces(database)[0]
    finally:
        alice.close()
        bob.close()

    # fresh opens load each namespace's own index file, holding only its rows
    for name, ids in (("alice", alice_ids), ("bob", [bob_zoom.id, in_bob.insight.id])):
        with open_memory(database, tmp_path, name, embedder=minilm) as memory:
            path = index_file_of(memory)
            if is_sqlite(database):
                assert path == Path(database).with_name(f"memory.db.{name}.faiss")
            assert json.loads(sidecar_path(path).read_text())["namespace"] == name
            assert sorted(memory.index.ids().tolist()) == sorted(ids)
            loaded, _meta = VectorIndex.load(path, minilm.dim)
            assert sorted(loaded.ids().tolist()) == sorted(ids)
    if is_sqlite(database):
        default_meta = json.loads(Path(database).with_name("memory.db.faiss.json").read_text())
        assert (default_meta["namespace"], default_meta["count"]) == ("default", 0)


def test_memory_commands_show_only_the_default_namespace(database: str, tmp_path: Path) -> None:
    """``foveate memory`` reads the default namespace: another namespace's rows in the same database never
    show up in ls, search or export, and rm does not reach them."""
    with open_memory(database, tmp_path, "alice") as alice:
        secret = alice.add("alice keeps her red cars lesson private").insight
    with open_memory(database, tmp_path, "default") as default:
        mine = default.add("zoom in to count small red cars").insight
    db = ["--db", database]
    listed = runner.invoke(app, ["memory", "ls", *db, "--include-deleted", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [json.loads(line)["id"] for line in listed.output.splitlines()] == [mine.id]
    found = runner.invoke(app, ["memory", "search", "red cars", *db, "--k", "5", "--json"])
    assert found.exit_code == 0, found.output
    assert [json.loads(line)["id"] for line in found.output.splitlines()] == [mine.id]
    exported = runner.invoke(app, ["memory", "export", "-", *db, "--include-deleted"])
    assert exported.exit_code == 0, exported.output
    assert [json.loads(line)["id"] for line in exported.output.splitlines()] == [mine.id]
    removed = runner.invoke(app, ["memory", "rm", str(secret.id), *db])
    assert removed.exit_code == 2 and f"no insight {secret.id}" in removed.output
    with open_memory(database, tmp_path, "alice") as alice:
        assert [i.id for i in alice.insights()] == [secret.id]


def test_an_index_that_holds_another_namespaces_rows_never_leaks_them(
    database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The index holds one namespace; should it ever hold another's rows (a bug, a file given to two
    namespaces), searches and merges still stay within the namespace, and such a file is rebuilt."""
    shared_file = tmp_path / "shared.faiss"
    texts = {"alice": ["alice counts the red squares", "alice reads the chart legend"]}
    texts["bob"] = ["bob counts the blue circles", "bob reads the map legend"]
    ids: dict[str, list[int]] = {}
    for name in ("bob", "alice"):  # alice opens the file bob wrote last (the same number of insights)
        with open_memory(database, tmp_path, name, index_path=shared_file) as memory:
            ids[name] = [memory.add(t).insight.id for t in texts[name]]
    assert json.loads(sidecar_path(shared_file).read_text())["namespace"] == "alice"
    with open_memory(database, tmp_path, "bob", index_path=shared_file) as bob:
        pass  # bob's open rebuilt the file from bob's rows
    assert json.loads(sidecar_path(shared_file).read_text())["namespace"] == "bob"
    with caplog.at_level(logging.WARNING, logger="foveate.memory"):
        alice = open_memory(database, tmp_path, "alice", index_path=shared_file)
    try:
        warned = [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage()]
        assert warned and "holds namespace 'bob', not 'alice'" in warned[0]
        assert sorted(alice.index.ids().tolist()) == ids["alice"]
        # now put bob's rows into alice's index by hand: they are still never returned, nor merged into
        with open_memory(database, tmp_path, "bob", index_path=False) as bob:
            bob_rows = list(bob.insights())
            alice.index.add(np.array(ids["bob"], dtype=np.int64), bob.embed([r.text for r in bob_rows]))
        hits = alice.search(texts["bob"][0], k=10)
        assert sorted(h.insight.id for h in hits) == ids["alice"]
        again = alice.add(texts["bob"][0])
        assert not again.merged and again.insight.namespace == "alice" and again.insight.id not in ids["bob"]
    finally:
        alice.close()
    with open_memory(database, tmp_path, "bob", index_path=False) as bob:
        assert [(i.id, i.times_seen) for i in bob.insights()] == [(i, 1) for i in ids["bob"]]


def test_an_index_file_from_before_namespaces_is_still_the_default_ones(
    database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A sidecar written before namespaces names none: it is the default namespace's, loaded as it was, and
    refused (rebuilt) by any other namespace given the same file."""
    path = tmp_path / "memory.faiss"
    with open_memory(database, tmp_path, "default", index_path=path) as memory:
        ids = [memory.add(f"lesson {w} about the same scenes").insight.id for w in ("one", "two")]
    meta = json.loads(sidecar_path(path).read_text())
    del meta["namespace"]
    sidecar_path(path).write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="foveate.memory"):
        with open_memory(database, tmp_path, "default", index_path=path) as memory:
            assert sorted(memory.index.ids().tolist()) == ids
        assert not [r for r in caplog.records if "rebuild" in r.getMessage()]
        with open_memory(database, tmp_path, "carol", index_path=path) as carol:
            assert len(carol.index) == 0 and carol.search("lesson about scenes", k=5) == []
    assert any("holds namespace 'default', not 'carol'" in r.getMessage() for r in caplog.records)


def test_each_namespace_keeps_its_own_embedder(database: str, tmp_path: Path) -> None:
    """Each namespace has its own index, so each may use its own embedder: one namespace's model is never
    held against another's, and embedding again (``on_model_change="reembed"``) stays within one."""
    with open_memory(database, tmp_path, "alice") as alice:
        alice.add("alice's lesson in 256 dimensions")
    with open_memory(database, tmp_path, "bob", embedder=HashingEmbedder(32)) as bob:
        bob.add("bob's lesson in 32 dimensions")
        assert bob.search("bob's lesson", k=5)[0].insight.embedding_model == "hashing-32"
    with open_memory(
        database, tmp_path, "bob", embedder=HashingEmbedder(64), on_model_change="reembed"
    ) as bob:
        assert [i.embedding_model for i in bob.insights()] == ["hashing-64"]
    with open_memory(database, tmp_path, "alice") as alice:
        assert [i.embedding_model for i in alice.insights()] == [f"hashing-{DIM}"]
        assert alice.search("alice's lesson in 256 dimensions", k=5)[0].score == pytest.approx(1.0, abs=1e-5)


# -- deleting a namespace -----------------------------------------------------------------------


def test_deleting_a_namespace_deletes_its_rows_and_index_and_nothing_else(
    database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    alice = open_memory(database, tmp_path, "alice")
    bob = open_memory(database, tmp_path, "bob")
    alice_too = open_memory(database, tmp_path, "alice", index_path=False)  # say, another process
    try:
        for memory, name in ((alice, "alice"), (bob, "bob")):
            run = memory.record_run(f"{name}'s question", answer="yes")
            memory.add(f"{name} counts red squares in the corners", run_id=run.id)
            gone = memory.add(f"{name} once thought the sky was green").insight.id
            memory.add(f"{name} reads chart legends first")
            memory.delete(gone)
        before = everything(bob)
        bob_hits = [h.insight.id for h in bob.search("red squares in corners", k=5)]
        alice_file = index_file_of(alice)
        alice.flush()
        assert alice_file.exists()

        removed = alice.delete_namespace()
        assert removed == NamespaceCounts(namespace="alice", insights=2, deleted_insights=1, runs=1)
        assert (
            len(alice) == 0 and list(alice.insights(include_deleted=True)) == [] and list(alice.runs()) == []
        )
        assert alice.search("red squares in corners", k=5) == [] and len(alice.index) == 0
        assert not alice_file.exists() and not sidecar_path(alice_file).exists()
        # another handle on the deleted namespace finds nothing either
        assert alice_too.search("red squares in corners", k=5) == [] and len(alice_too) == 0
        # bob is whole: rows, runs, index, search
        assert everything(bob) == before
        assert [h.insight.id for h in bob.search("red squares in corners", k=5)] == bob_hits
        assert list_namespaces(database) == [
            NamespaceCounts(namespace="bob", insights=2, deleted_insights=1, runs=1)
        ]
        # the namespace can be used again, from nothing
        fresh = alice.add("alice starts over").insight
        assert [i.id for i in alice.insights()] == [fresh.id]
    finally:
        for memory in (alice, bob, alice_too):
            memory.close()
    with caplog.at_level(logging.WARNING, logger="foveate.memory"):
        with open_memory(database, tmp_path, "bob") as bob:
            assert everything(bob) == before  # bob's index file was loaded as it was
        with open_memory(database, tmp_path, "alice") as alice:
            assert sorted(alice.index.ids().tolist()) == [fresh.id]
    assert not [r for r in caplog.records if "rebuild" in r.getMessage()]


def test_deleting_a_namespace_opened_without_an_index_file_removes_its_file_too(tmp_path: Path) -> None:
    """A command that opens the memory without the index file (``index_path=False``) still leaves no
    index of the deleted namespace beside the database; the other namespaces' files stay."""
    db = tmp_path / "memory.db"
    for name in ("alice", "bob"):
        with InsightMemory(db, namespace=name, embedder=HashingEmbedder(DIM)) as memory:
            memory.add(f"{name}'s lesson")
    files = {n: tmp_path / f"memory.db.{n}.faiss" for n in ("alice", "bob")}
    assert all(f.exists() and sidecar_path(f).exists() for f in files.values())
    with InsightMemory(db, namespace="alice", embedder=HashingEmbedder(DIM), index_path=False) as memory:
        assert memory.delete_namespace().insights == 1
    assert not files["alice"].exists() and not sidecar_path(files["alice"]).exists()
    assert files["bob"].exists() and json.loads(sidecar_path(files["bob"]).read_text())["count"] == 1


def test_deleting_a_namespace_in_a_read_only_memory_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "memory.db"
    with InsightMemory(db, namespace="alice", embedder=HashingEmbedder(DIM)) as memory:
        memory.add("keep me")
    reader = InsightMemory(db, namespace="alice", embedder=HashingEmbedder(DIM), read_only=True)
    with reader, pytest.raises(InsightMemoryError, match="opened read-only"):
        reader.delete_namespace()
    assert list_namespaces(db) == [NamespaceCounts(namespace="alice", insights=1, deleted_insights=0, runs=0)]


# -- writers at once ------------------------------------------------------------------------------


def lesson(seed: str) -> str:
    """A text no other seed's is a near-duplicate of (8 of 2000 words)."""
    import random

    words = [f"w{n}" for n in range(2000)]
    return " ".join(random.Random(seed).sample(words, 8))


def write(database: str, index: str, namespace: str, count: int, start: Any) -> None:
    """One writer: runs, their insights (some texts the same in every namespace), feedback, counters.

    Run in a thread here and, by its source, in a child process; so it imports what it uses itself.
    """
    from foveate.memory import HashingEmbedder, InsightMemory

    memory = InsightMemory.open(
        database,
        namespace=namespace,
        embedder=HashingEmbedder(256),
        index_path=None if index == "-" else index,
        save_every=3,
    )
    try:
        start()
        for i in range(count):
            run = memory.record_run(f"{namespace} question {i}", answer=str(i))
            shared = memory.add(f"shared lesson {i}: {lesson(str(i))}", "tip", run_id=run.id)
            own = memory.add(f"{namespace} lesson {i}: {lesson(namespace + str(i))}", "tip", run_id=run.id)
            assert not shared.merged and not own.merged, (shared, own)
            memory.set_feedback(run.id, correct=i % 2 == 0, feedback=namespace)
            memory.mark_used([shared.insight.id, own.insight.id], helpful=True)
    finally:
        memory.close()


CHILD = (
    "from __future__ import annotations\n"
    + inspect.getsource(lesson)
    + inspect.getsource(write)
    + """
import sys


def start():  # the memory is open: say so, and wait for the word to go
    print("ready", flush=True)
    sys.stdin.readline()


write(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), start)
print("done", flush=True)
"""
)


@pytest.mark.parametrize("how", ["threads", "processes"])
def test_writers_in_two_namespaces_at_once_each_keep_exactly_their_own_rows(
    database: str, tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    names, count = ("left", "right"), 12
    index = {n: str(index_for(database, tmp_path, n) or "-") for n in names}
    if how == "threads":
        barrier = threading.Barrier(len(names))
        failures: list[BaseException] = []

        def run(name: str) -> None:
            try:
                write(database, index[name], name, count, barrier.wait)
            except BaseException as exc:
                failures.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=run, args=(n,)) for n in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not failures, failures
    else:
        children = [
            subprocess.Popen(
                [sys.executable, "-c", CHILD, database, index[n], n, str(count)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            for n in names
        ]
        try:
            for child in children:  # both have opened the memory: start them together
                assert child.stdout is not None and child.stderr is not None
                assert child.stdout.readline().strip() == "ready", child.stderr.read()
            for child in children:
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            for child in children:
                out, err = child.communicate(timeout=300)
                assert child.returncode == 0 and out.strip() == "done", err
        finally:
            for child in children:  # a failed start leaves none behind, waiting for its word
                if child.poll() is None:
                    child.kill()
                    child.wait(timeout=30)
    assert list_namespaces(database) == [
        NamespaceCounts(namespace=n, insights=2 * count, deleted_insights=0, runs=count) for n in names
    ]
    for name in names:
        expected = {f"shared lesson {i}: {lesson(str(i))}" for i in range(count)}
        expected |= {f"{name} lesson {i}: {lesson(name + str(i))}" for i in range(count)}
        with (
            caplog.at_level(logging.WARNING, logger="foveate.memory"),
            open_memory(database, tmp_path, name) as memory,
        ):
            insights = list(memory.insights(include_deleted=True))
            runs = list(memory.runs())
            assert {i.text for i in insights} == expected and len(insights) == 2 * count
            assert {(i.namespace, i.times_seen, i.times_used, i.times_helpful) for i in insights} == {
                (name, 1, 1, 1)
            }
            assert [r.question for r in runs] == [f"{name} question {i}" for i in range(count)]
            assert {r.feedback for r in runs} == {name} and {r.namespace for r in runs} == {name}
            assert {i.run_id for i in insights} == {r.id for r in runs}
            # the index file this open loaded holds this namespace's rows, and only those
            assert sorted(memory.index.ids().tolist()) == sorted(i.id for i in insights)
            path = index_file_of(memory)
            assert json.loads(sidecar_path(path).read_text())["namespace"] == name
            if is_sqlite(database):
                assert path.name == f"memory.db.{name}.faiss"
            for i in (0, count - 1):
                hit = memory.search(f"shared lesson {i}: {lesson(str(i))}", k=1)[0]
                assert hit.insight.namespace == name and hit.score == pytest.approx(1.0, abs=1e-5)
        # and an index built from the database, with no file, holds the same
        with open_memory(database, tmp_path, name, index_path=False) as rebuilt:
            assert sorted(rebuilt.index.ids().tolist()) == sorted(i.id for i in insights)
    assert not [r for r in caplog.records if "rebuild" in r.getMessage()]


# -- from schema 0001 ---------------------------------------------------------------------------


def make_0001_memory(database: str) -> list[int]:
    """A memory as foveate wrote it before namespaces: schema 0001, a run and three insights (one deleted)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("foveate.memory") / "migrations"))
    runs = sa.table(
        "runs",
        sa.column("id", sa.Integer),
        sa.column("question", sa.Text),
        sa.column("model_id", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    insights = sa.table(
        "insights",
        *(sa.column(c, sa.Integer) for c in ("id", "run_id", "dim", "times_seen", "times_used", "revision")),
        *(sa.column(c, sa.Text) for c in ("text", "kind", "embedding_model")),
        sa.column("times_helpful", sa.Integer),
        sa.column("embedding", sa.LargeBinary),
        sa.column("deleted", sa.Boolean),
        *(sa.column(c, sa.DateTime(timezone=True)) for c in ("created_at", "updated_at")),
    )
    texts = ["zoom before counting small things", "read the legend first", "a lesson deleted later"]
    vectors = HashingEmbedder(DIM).embed(texts)
    now = datetime.now(timezone.utc)
    engine = create_engine(as_url(database))
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0001")
            conn.execute(sa.insert(runs).values(id=1, question="how many?", model_id="m", created_at=now))
            conn.execute(
                sa.insert(insights),
                [
                    {
                        "id": n + 1,
                        "text": t,
                        "kind": "tip",
                        "run_id": 1 if n == 0 else None,
                        "embedding_model": f"hashing-{DIM}",
                        "dim": DIM,
                        "embedding": np.ascontiguousarray(v, dtype="<f4").tobytes(),
                        "created_at": now,
                        "updated_at": now,
                        "times_seen": 1,
                        "times_used": 0,
                        "times_helpful": 0,
                        "deleted": n == 2,
                        "revision": n + 1,
                    }
                    for n, (t, v) in enumerate(zip(texts, vectors, strict=True))
                ],
            )
            conn.execute(text("UPDATE memory_state SET revision = 3"))
            if conn.dialect.name == "postgresql":  # explicit ids: move the sequences on, as inserts would
                conn.execute(text("SELECT setval('runs_id_seq', 1)"))
                conn.execute(text("SELECT setval('insights_id_seq', 3)"))
    finally:
        engine.dispose()
    return [1, 2]


def test_a_memory_from_before_namespaces_migrates_into_the_default_namespace(
    database: str, tmp_path: Path
) -> None:
    live = make_0001_memory(database)
    with open_memory(database, tmp_path, "default") as memory:
        with memory.store.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0003"
            if is_sqlite(database):  # added in place: the table keeps AUTOINCREMENT (ids never reused)
                sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'insights'")).scalar_one()
                assert "AUTOINCREMENT" in sql
        insights = list(memory.insights(include_deleted=True))
        assert [(i.id, i.namespace, i.deleted) for i in insights] == [
            (1, "default", False),
            (2, "default", False),
            (3, "default", True),
        ]
        assert [(r.id, r.namespace) for r in memory.runs()] == [(1, "default")]
        assert sorted(memory.index.ids().tolist()) == live
        assert memory.search("zoom before counting small things", k=1)[0].insight.id == 1
        assert memory.add("a lesson after the upgrade", run_id=1).insight.id == 4
    with open_memory(database, tmp_path, "alice") as alice:
        assert len(alice) == 0 and list(alice.runs()) == [] and alice.get(1) is None
        with pytest.raises(InsightMemoryError, match="no run 1"):
            alice.add("from the old run", run_id=1)
    assert list_namespaces(database) == [
        NamespaceCounts(namespace="default", insights=3, deleted_insights=1, runs=1)
    ]


def test_an_agent_opens_its_memory_in_its_namespace(tmp_path: Path) -> None:
    """``Agent(memory=PATH, namespace=...)`` opens that namespace; a memory already opened in another one is
    refused by name rather than silently used."""
    from foveate.agent import Agent
    from foveate.errors import FoveateError
    from foveate.memory import HashingEmbedder
    from foveate.testing import ScriptedVLM

    database = tmp_path / "memory.db"
    with InsightMemory.open(database, embedder=HashingEmbedder(), namespace="bob") as bob:
        with Agent(ScriptedVLM(), workflow="direct", memory=bob, checkpoints=None) as agent:
            assert agent.memory is bob
        with pytest.raises(FoveateError, match="namespace='alice'.*'bob'"):
            Agent(ScriptedVLM(), workflow="direct", memory=bob, namespace="alice", checkpoints=None)
    with pytest.raises(FoveateError, match="not a valid memory namespace"):
        Agent(ScriptedVLM(), workflow="direct", memory=database, namespace="../x", checkpoints=None)


def test_a_run_goes_on_only_in_the_namespace_it_began_in(tmp_path: Path) -> None:
    """Runs record their memory namespace: with one checkpoint database for two namespaces (processes
    behind one address), another namespace can neither judge a run nor go on with it (which would write
    its checkpoints as that namespace's)."""
    from PIL import Image

    from foveate.agent import Agent
    from foveate.errors import RunError
    from foveate.memory import HashingEmbedder
    from foveate.testing import ScriptedVLM

    database, runs = tmp_path / "memory.db", tmp_path / "runs.db"
    picture = Image.new("RGB", (64, 64), "white")
    with (
        InsightMemory.open(database, embedder=HashingEmbedder(), namespace="alice") as alice_memory,
        InsightMemory.open(database, embedder=HashingEmbedder(), namespace="bob") as bob_memory,
        Agent(ScriptedVLM(), workflow="direct", memory=alice_memory, checkpoints=runs) as alice,
        Agent(ScriptedVLM(), workflow="direct", memory=bob_memory, checkpoints=runs) as bob,
    ):
        run_id = alice.ask("What colour is it?", image=picture, options=["red", "white"]).run_id
        for going_on in (
            lambda: bob.feedback(run_id, correct=True),
            lambda: bob.resume(run_id),
            lambda: list(bob.resume_stream(run_id)),
        ):
            with pytest.raises(RunError, match="another memory namespace"):
                going_on()
        alice.feedback(run_id, correct=True)  # its own namespace: taken
        assert [r.correct for r in alice_memory.runs()] == [True] and list(bob_memory.runs()) == []
