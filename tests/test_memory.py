"""Insight memory: storing, merging, finding, deleting and exporting insights; the index stays in step.

Every test runs on a SQLite file, and also on PostgreSQL when FOVEATE_TEST_DATABASE_URL names a
server (``.ci/postgres.sh`` starts a throwaway one): each test then gets a fresh database.
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from foveate.errors import EmbedderMismatchError, InsightMemoryError, ModelLoadError
from foveate.memory import (
    HashingEmbedder,
    IndexConfig,
    InsightKind,
    InsightMemory,
    SentenceTransformerEmbedder,
    VectorIndex,
    fuse,
    image_fingerprint,
    normalise,
)
from foveate.memory.index import sidecar_path


def open_memory(database: str, tmp_path: Path, **kwargs: Any) -> InsightMemory:
    kwargs.setdefault("embedder", HashingEmbedder(256))
    kwargs.setdefault("index_path", tmp_path / "memory.faiss")
    return InsightMemory.open(database, **kwargs)


def test_minilm_is_offline_normalised_384d_and_semantic(minilm: SentenceTransformerEmbedder) -> None:
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    vectors = minilm.embed(
        ["Zoom in before counting small objects.", "Crop and enlarge tiny things to count them."]
    )
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    unrelated = minilm.embed(["The invoice total is in the bottom right corner."])[0]
    assert vectors[0] @ vectors[1] > vectors[0] @ unrelated + 0.2
    assert minilm.embed([]).shape == (0, 384)


def test_unknown_model_fails_offline_with_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="offline"):
        SentenceTransformerEmbedder("no-such-org/no-such-model-xyz")


def test_search_by_meaning_with_minilm(
    database: str, tmp_path: Path, minilm: SentenceTransformerEmbedder
) -> None:
    with open_memory(database, tmp_path, embedder=minilm) as memory:
        run = memory.record_run("How many birds are on the wire?", answer="4", correct=False)
        count = memory.add(
            "Zoom into a crop before counting small objects", "perception_lesson", run_id=run.id
        )
        memory.add("Read text on signs from a high-resolution crop of the sign", "perception_lesson")
        memory.add("Left and right are from the viewer's side, not the subject's", "task_relation")
        memory.add("Answering before looking at the image led to a wrong colour", "failure")
        hits = memory.search("how many ducks are swimming in the pond", k=2)
        assert hits[0].insight.id == count.insight.id
        assert hits[0].score > hits[1].score and -1.0 <= hits[1].score <= 1.0
        assert hits[0].insight.kind is InsightKind.PERCEPTION_LESSON and hits[0].insight.run_id == run.id
        # ICAL leaves out the episode being solved
        excluded = memory.search("how many ducks are swimming in the pond", k=2, exclude_run_id=run.id)
        assert count.insight.id not in [h.insight.id for h in excluded] and len(excluded) == 2
        assert [h.insight.kind for h in memory.search("ducks", k=5, kinds=["failure"])] == [
            InsightKind.FAILURE
        ]


def test_near_duplicates_merge_instead_of_piling_up(database: str, tmp_path: Path) -> None:
    with open_memory(database, tmp_path) as memory:
        first = memory.add("count objects on a zoomed crop", "tip")
        again = memory.add("  count objects on a zoomed crop ", "tip")
        other = memory.add("the legend of a chart explains its colours", "tip")
        assert not first.merged and again.merged and again.insight.id == first.insight.id
        assert again.similarity is not None and again.similarity > 0.99
        assert again.insight.times_seen == 2 and not other.merged
        batch = memory.add_many(["signs are read best up close", "signs are read best up close"], "tip")
        assert [r.merged for r in batch] == [False, True] and batch[1].insight.id == batch[0].insight.id
        assert len(memory) == 3 and len(memory.index) == 3
    with open_memory(database, tmp_path, merge_threshold=None) as memory:
        assert not memory.add("count objects on a zoomed crop", "tip").merged
        assert len(memory) == 4


def test_filters_and_bad_input(database: str, tmp_path: Path) -> None:
    with open_memory(database, tmp_path) as memory:
        run = memory.record_run("q")
        for i in range(6):
            memory.add(f"lesson number {i} about red squares", "tip", run_id=run.id if i < 4 else None)
        assert memory.search("red squares", k=0) == []
        hits = memory.search("red squares", k=3, exclude_run_id=run.id)
        assert len(hits) == 2 and all(h.insight.run_id is None for h in hits)
        assert all(h.score >= 0.5 for h in memory.search("red squares", k=6, min_score=0.5))
        with pytest.raises(ValueError, match="unknown insight kind"):
            memory.add("x", "opinion")
        with pytest.raises(ValueError, match="needs some text"):
            memory.add("   ")
        with pytest.raises(InsightMemoryError, match="no run 999"):
            memory.add("a lesson from a run that is not there", run_id=999)
        assert len(memory) == 6  # the refused adds left nothing


def test_delete_update_and_reopen_keep_database_and_index_in_step(database: str, tmp_path: Path) -> None:
    with open_memory(database, tmp_path) as memory:
        ids = [memory.add(f"insight {w} alpha beta", "tip").insight.id for w in ("one", "two", "three")]
        assert memory.delete(ids[0]) == 1 and memory.delete(ids[0]) == 0
        assert ids[0] not in memory.index and memory.get(ids[0]).deleted  # type: ignore[union-attr]
        updated = memory.update(ids[1], text="charts need their legend read first", kind="task_relation")
        assert updated.kind is InsightKind.TASK_RELATION
        assert memory.search("read the chart legend first", k=1)[0].insight.id == ids[1]
        with pytest.raises(InsightMemoryError, match=f"no insight {ids[0]}"):
            memory.update(ids[0], text="resurrect")
    with open_memory(database, tmp_path) as memory:
        assert sorted(memory.index.ids().tolist()) == ids[1:] and len(memory) == 2
        assert (
            memory.search("read the chart legend first", k=1)[0].insight.text
            == "charts need their legend read first"
        )
        assert memory.purge() == 1 and memory.get(ids[0]) is None
        memory.mark_used(ids[1:], helpful=True)
        memory.mark_used([ids[2]])
        assert memory.get(ids[1]).times_helpful == 1  # type: ignore[union-attr]
        assert memory.get(ids[2]).times_used == 2  # type: ignore[union-attr]


def test_two_handles_see_each_others_changes(database: str, tmp_path: Path) -> None:
    a = open_memory(database, tmp_path)
    b = open_memory(database, tmp_path, index_path=False)  # e.g. another process, no index file of its own
    try:
        x = a.add("apples are red in these scenes", "tip").insight.id
        y = b.add("bananas are yellow in these scenes", "tip").insight.id
        assert b.search("apples red", k=1)[0].insight.id == x
        assert a.search("bananas yellow", k=1)[0].insight.id == y
        b.delete(x)
        assert [h.insight.id for h in a.search("apples red", k=5)] == [y]
        # a's near-duplicate check sees b's insight too
        assert a.add("bananas are yellow in these scenes", "tip").merged
    finally:
        a.close()
        b.close()


def test_stale_index_file_is_caught_up_not_rebuilt(
    database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_memory(database, tmp_path) as memory:
        first = [memory.add(f"first batch item {i} zeta", "tip").insight.id for i in range(3)]
    meta = json.loads(sidecar_path(tmp_path / "memory.faiss").read_text())
    assert meta["count"] == 3 and meta["max_insight_id"] == max(first)
    with open_memory(database, tmp_path, index_path=False) as other:  # writes the database only
        later = [other.add(f"second batch item {i} theta", "tip").insight.id for i in range(2)]
        other.delete(first[0])
    with caplog.at_level(logging.WARNING, logger="foveate.memory"), open_memory(database, tmp_path) as memory:
        assert sorted(memory.index.ids().tolist()) == sorted(first[1:] + later)
    assert not [r for r in caplog.records if "rebuild" in r.getMessage()]
    meta = json.loads(sidecar_path(tmp_path / "memory.faiss").read_text())
    assert meta["count"] == 4 and meta["max_insight_id"] == max(later)  # the caught-up index was saved


@pytest.mark.parametrize("damage", ["index", "sidecar", "checksum", "missing"])
def test_broken_index_is_rebuilt_from_the_database(
    database: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    index_file = tmp_path / "memory.faiss"
    with open_memory(database, tmp_path) as memory:
        ids = [memory.add(f"stored insight {i} {i * 7} kappa", "tip").insight.id for i in range(5)]
    if damage == "index":
        index_file.write_bytes(b"\x00garbage" * 100)
    elif damage == "sidecar":
        sidecar_path(index_file).write_text("{not json")
    elif damage == "checksum":
        data = bytearray(index_file.read_bytes())
        data[-5] ^= 0xFF
        index_file.write_bytes(bytes(data))
    else:
        index_file.unlink()
    with caplog.at_level(logging.WARNING, logger="foveate.memory"), open_memory(database, tmp_path) as memory:
        assert sorted(memory.index.ids().tolist()) == ids
        assert memory.search("stored insight 3 21 kappa", k=1)[0].insight.id == ids[3]
    warned = [r.getMessage() for r in caplog.records if "rebuilding" in r.getMessage()]
    assert warned if damage != "missing" else True
    if damage != "missing":
        assert str(index_file) in warned[0]
    VectorIndex.load(index_file, 256)  # the rebuilt index was written back, sound


def test_embedder_change_is_refused_or_reembedded(database: str, tmp_path: Path) -> None:
    with open_memory(database, tmp_path) as memory:
        memory.add("keep the colour names short", "tip")
    with pytest.raises(EmbedderMismatchError, match="hashing-256"):
        open_memory(database, tmp_path, embedder=HashingEmbedder(32))
    with open_memory(database, tmp_path, embedder=HashingEmbedder(32), on_model_change="reembed") as memory:
        assert memory.index.dim == 32 and len(memory.index) == 1
        assert memory.search("colour names", k=1)[0].insight.embedding_model == "hashing-32"


def test_runs_are_recorded_with_image_fingerprints(database: str, tmp_path: Path) -> None:
    red = Image.new("RGB", (16, 8), (255, 0, 0))
    path = tmp_path / "red.png"
    red.save(path)
    with open_memory(database, tmp_path) as memory:
        run = memory.record_run(
            "What colour is it?",
            "red",
            image=path,
            correct=None,
            trace_summary="looked once",
            model_id="tiny",
        )
        assert run.image_sha256 == image_fingerprint(red) == image_fingerprint(np.asarray(red))
        assert image_fingerprint(Image.new("RGB", (8, 16), (255, 0, 0))) != run.image_sha256
        done = memory.set_feedback(run.id, correct=False, feedback="it was orange")
        assert (done.correct, done.feedback, done.answer) == (False, "it was orange", "red")
        assert memory.get_run(run.id) == done and [r.id for r in memory.runs()] == [run.id]
        assert done.created_at.tzinfo is not None
        with pytest.raises(InsightMemoryError, match="no run 42"):
            memory.set_feedback(42, correct=True)


def test_export_jsonl(database: str, tmp_path: Path) -> None:
    with open_memory(database, tmp_path) as memory:
        a = memory.add("first lesson about zoom", "perception_lesson").insight
        b = memory.add("second lesson about legends", "tip").insight
        memory.delete(b.id)
        out = tmp_path / "insights.jsonl"
        assert memory.export(out) == 1
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert rows == [json.loads(a.model_dump_json())] and rows[0]["kind"] == "perception_lesson"
        buffer = io.StringIO()
        assert memory.export(buffer, include_deleted=True) == 2
        assert [json.loads(line)["deleted"] for line in buffer.getvalue().splitlines()] == [False, True]


def test_migrations_match_the_models(database: str, tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from foveate.memory.schema import Base

    with open_memory(database, tmp_path) as memory, memory.store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diffs == []


def test_image_fusion_hook(database: str, tmp_path: Path) -> None:
    text_vectors = normalise(np.eye(4, 8, dtype=np.float32))
    image_vectors = normalise(np.eye(4, 8, k=4, dtype=np.float32))
    summed = fuse(text_vectors, image_vectors, image_weight=0.25)
    assert np.allclose(np.linalg.norm(summed, axis=1), 1) and np.allclose(
        summed[0, [0, 4]], [0.9487, 0.3162], atol=1e-4
    )
    joined = fuse(text_vectors, np.zeros((4, 3), np.float32), image_weight=0.5, mode="concat")
    assert joined.shape == (4, 11) and np.allclose(joined[:, :8], text_vectors)
    assert fuse(text_vectors, None) is not None and np.allclose(fuse(text_vectors, None), text_vectors)
    with pytest.raises(ValueError, match="equal shapes"):
        fuse(text_vectors, np.ones((4, 3)))
    with open_memory(database, tmp_path, embedder=HashingEmbedder(16), image_weight=0.5) as memory:
        key = np.zeros(16, np.float32)
        key[3] = 1.0
        with_image = memory.add("same words here", "tip", image_vector=key).insight.id
        memory.add("same words here", "tip")  # no image: a different key, so not merged
        assert len(memory) == 2
        assert memory.search("same words here", k=1, image_vector=key)[0].insight.id == with_image


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 50), dim))
    return normalise(centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, dim)))


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_index_switch_delete_update_and_files(kind: str, tmp_path: Path) -> None:
    dim = 32
    config = IndexConfig(
        approximate_above=300, approximate=kind, ivf_nprobe=64, refine_k_factor=10, rebuild_dead_fraction=0.5
    )  # type: ignore[arg-type]
    vectors = _clustered(1000, dim, seed=1)
    ids = np.arange(1, 1001, dtype=np.int64)
    index = VectorIndex(dim, config)
    index.add(ids[:300], vectors[:300])
    assert index.kind == "flat"
    index.add(ids[300:], vectors[300:])  # crosses the threshold
    assert index.kind == kind and len(index) == 1000
    exact = VectorIndex.build(ids, vectors, dim, IndexConfig(approximate_above=None))
    queries = _clustered(50, dim, seed=2)
    _, truth = exact.search(queries, 10)
    _, found = index.search(queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.9, recall
    # deletes are tombstones: never returned, and they survive a save and load
    gone = found[:, 0].copy()
    index.remove(gone)
    assert index.dead > 0 and not np.isin(index.search(queries, 10)[1], gone).any()
    index.upsert(ids[:1], queries[:1])  # a new vector under an old id
    scores, top = index.search(queries[:1], 10)
    assert top[0, 0] == 1 and scores[0, 0] == pytest.approx(1.0, abs=1e-5)  # re-ranked on exact vectors
    assert len(index) == 1000 - len(set(gone.tolist()) - {1})
    path = tmp_path / "ann.faiss"
    index.save(path, {"revision": 1})
    loaded, meta = VectorIndex.load(path, dim, config)
    assert loaded.kind == kind and meta["dead_slots"] and len(loaded) == len(index)
    assert np.array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])
    # compaction drops the dead slots and keeps every live vector
    loaded.compact()
    assert loaded.dead == 0 and sorted(loaded.ids().tolist()) == sorted(index.ids().tolist())
    # far enough below the threshold it goes back to exact
    loaded.remove(loaded.ids()[:900])
    loaded.compact()
    assert loaded.kind == "flat"
