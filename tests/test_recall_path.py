"""The end-to-end recall benchmark's own parts: its lessons, its vector cache, its exact baseline."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from benchmarks.recall_path import embedded, exact_top, lessons
from foveate.memory import SentenceTransformerEmbedder


def test_lessons_are_distinct_rule_lessons_and_seeded() -> None:
    first = lessons(300, seed=1)
    assert len(set(first)) == 300 and first == lessons(300, seed=1)
    assert all("questions like" in text.lower() or "probe budget" in text for text in first)
    other = lessons(100, seed=2, exclude=set(first))
    assert not set(other) & set(first)


class Refusing:
    """An embedder that must not be asked: the vectors are expected from the cache."""

    name = "refusing"
    dim = 384

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError(f"asked to embed {len(texts)} texts that the cache holds")


class Counting:
    """MiniLM, counting the texts it is asked to embed."""

    def __init__(self, inner: SentenceTransformerEmbedder) -> None:
        self.inner, self.asked = inner, 0
        self.name, self.dim = inner.name, inner.dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.asked += len(texts)
        return self.inner.embed(texts)


def test_the_vector_cache_is_read_back_and_refused_when_made_by_other_code(
    tmp_path: Path, minilm: SentenceTransformerEmbedder
) -> None:
    texts = lessons(5, seed=1)
    made = embedded(texts, minilm, tmp_path, "t", chunk=2)
    assert len(list(tmp_path.glob("*.npy"))) == 3  # chunks of 2, 2 and 1
    again = embedded(texts, Refusing(), tmp_path, "t", chunk=2)  # type: ignore[arg-type]
    np.testing.assert_array_equal(made, again)
    np.testing.assert_allclose(made, minilm.embed(texts), atol=1e-5)  # in order, every text once
    stamp = sorted(tmp_path.glob("*.json"))[0]
    good = stamp.read_text()
    stamp.write_text(json.dumps(json.loads(good) | {"code": "0" * 64}))
    with pytest.raises(SystemExit, match="other weights, code or texts"):
        embedded(texts, Refusing(), tmp_path, "t", chunk=2)  # type: ignore[arg-type]
    stamp.write_text(good)
    with pytest.raises(AssertionError, match="asked to embed"):  # other texts are not in the cache
        embedded(lessons(3, seed=2), Refusing(), tmp_path, "t", chunk=2)  # type: ignore[arg-type]


def test_a_stopped_fill_resumes_where_it_stopped(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    texts = lessons(6, seed=1)
    embedded(texts[:4], minilm, tmp_path, "t", chunk=2)  # a run stopped after two chunks
    counting = Counting(minilm)
    whole = embedded(texts, counting, tmp_path, "t", chunk=2)  # type: ignore[arg-type]
    assert counting.asked == 2 and whole.shape == (6, minilm.dim)
    np.testing.assert_allclose(whole, minilm.embed(texts), atol=1e-5)


def test_exact_top_is_the_best_first_inner_product_order() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 8)).astype(np.float32)
    queries = rng.normal(size=(7, 8)).astype(np.float32)
    expected = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    np.testing.assert_array_equal(exact_top(queries, vectors, chunk=3), expected)
