"""The FAISS side of the memory: an id-mapped inner-product index, its kinds, and its files.

Vectors are L2-normalised, so inner product is cosine similarity. The index is a cache of the
database: it can always be rebuilt from the stored embeddings, and it is written atomically
(temporary file, fsync, ``os.replace``) together with a JSON sidecar that records what it covers
(the database revision, the highest insight id, the count) and the SHA-256 of the index file.

Kinds, chosen by the number of live vectors (``IndexConfig.approximate_above``):

- ``flat``: ``IndexIDMap2(IndexFlatIP)``, exact. Deletes remove the vector. On a machine where
  faiss sees a GPU, searches run on a GPU copy.
- ``hnsw``: ``IndexIDMap2(IndexHNSWFlat)``, approximate, fast queries, slow to build.
- ``ivfpq``: ``IndexIDMap2(IndexRefineFlat(IndexIVFPQ))``: a coarse PQ search, re-ranked with the
  exact vectors (``refine_k_factor`` times ``k`` candidates).

HNSW and IVF-PQ cannot remove vectors cheaply, so a delete marks the slot dead; searches skip
dead slots with an ``IDSelectorBitmap`` and the index compacts itself (from its own exact
vectors) once ``rebuild_dead_fraction`` of its slots are dead.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import faiss as _faiss
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from foveate.errors import IndexFileError
from foveate.memory.index_files import atomic_write, file_lock, sidecar_path

log = logging.getLogger(__name__)
# faiss is a SWIG module whose bundled type hints lag behind it (keyword search parameters, downcasts)
faiss: Any = _faiss

SIDECAR_FORMAT = 1
# Batches up to this many queries are searched on one OpenMP thread: a parallel region for a
# single query only adds a barrier, which costs milliseconds when the other core is busy.
SMALL_BATCH = 4
IndexKind = Literal["flat", "hnsw", "ivfpq"]


class IndexConfig(BaseModel):
    """How the vector index is built and searched.

    ``approximate_above``: above this many live vectors the exact flat index is replaced by
    ``approximate`` (``None``: always exact). The defaults reach recall@10 >= 0.95 on embedding-like
    data; see ``docs/benchmarks/memory.md`` for the trade-offs measured.
    """

    model_config = ConfigDict(frozen=True)
    approximate_above: int | None = Field(default=50_000, ge=1)
    approximate: Literal["hnsw", "ivfpq"] = "hnsw"
    hnsw_m: int = Field(default=32, ge=4)
    # 200 / 96, not faiss's 40 / 16 or the 64 / 64 before: on real lessons (100,000 rule-written lessons
    # embedded by MiniLM, 1,000 tuning queries of another seed; benchmarks/recall_path.py) 64 / 64 reached
    # recall@10 0.922 against exact search, 200 / 96 0.990 at about 0.3 ms a query on one core; the
    # synthetic clustered vectors of docs/benchmarks/memory.md had hidden this (0.98 there at 64 / 32).
    hnsw_ef_construction: int = Field(default=200, ge=8)
    hnsw_ef_search: int = Field(default=96, ge=1)
    ivf_nlist: int | None = Field(default=None, ge=1)  # None: about 2 * sqrt(n)
    ivf_nprobe: int = Field(default=32, ge=1)
    pq_bytes: int | None = Field(default=None, ge=1)  # sub-quantizers per vector; None: dim / 8
    refine_k_factor: float = Field(default=4.0, ge=1.0)
    use_gpu: bool | None = None  # None: when faiss sees a GPU (flat index only)
    rebuild_dead_fraction: float = Field(default=0.2, gt=0.0, le=1.0)


def gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


_GPU_RESOURCES: Any = None


def _gpu_resources() -> Any:
    global _GPU_RESOURCES
    if _GPU_RESOURCES is None:
        _GPU_RESOURCES = faiss.StandardGpuResources()
    return _GPU_RESOURCES


def _pq_layout(dim: int, n: int, pq_bytes: int | None) -> tuple[int, int]:
    """(sub-quantizers, bits each): about 8 dimensions per byte, fewer centroids for tiny training sets."""
    target = pq_bytes or max(1, dim // 8)
    m = max(d for d in range(1, min(target, dim) + 1) if dim % d == 0)
    nbits = 8 if n >= 39 * 256 else max(1, min(8, int(math.log2(max(2, n // 39)))))
    return m, nbits


def _flat_vectors(flat: Any, dim: int) -> np.ndarray:
    """The exact vectors held by an ``IndexFlat``, copied out."""
    flat = faiss.downcast_index(flat)
    return faiss.vector_to_array(flat.codes).view(np.float32).reshape(-1, dim).copy()


class VectorIndex:
    """Insight ids and their vectors, searchable by inner product; not thread-safe (the memory locks)."""

    def __init__(self, dim: int, config: IndexConfig | None = None) -> None:
        self.dim = dim
        self.config = config or IndexConfig()
        self.kind: IndexKind = "flat"
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._ids = np.zeros(0, dtype=np.int64)  # slot -> insight id (mirror of id_map)
        self._live = np.zeros(0, dtype=bool)  # slot -> not deleted
        self._bitmap: np.ndarray | None = None  # packed _live, when some slots are dead
        self._gpu: Any = None
        if self.config.use_gpu and not gpu_available():
            raise RuntimeError("IndexConfig(use_gpu=True) but faiss sees no GPU (install faiss-gpu)")

    # -- contents -------------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self._live.sum())

    @property
    def slots(self) -> int:
        return int(self._ids.size)

    @property
    def dead(self) -> int:
        return self.slots - len(self)

    @property
    def max_id(self) -> int:
        return int(self._ids.max()) if self._ids.size else 0

    def ids(self) -> np.ndarray:
        """The live insight ids, in slot order."""
        return self._ids[self._live].copy()

    def __contains__(self, insight_id: int) -> bool:
        return bool(np.any((self._ids == insight_id) & self._live))

    def nbytes(self) -> int:
        """Size of the serialised index (what it takes on disk, and about what it takes in memory)."""
        return int(faiss.serialize_index(self._index).size)

    # -- changes --------------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under ids that are not in the index yet (use ``upsert`` otherwise)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        if ids.size != vectors.shape[0]:
            raise ValueError(f"{ids.size} ids for {vectors.shape[0]} vectors")
        if ids.size == 0:
            return
        if self.kind == "flat" and self._switch_due(len(self) + ids.size):
            all_ids = np.concatenate([self.ids(), ids])
            all_vectors = np.concatenate([self.vectors()[1], vectors])
            self._build(all_ids, all_vectors)
            return
        self._index.add_with_ids(vectors, ids)
        self._ids = np.concatenate([self._ids, ids])
        self._live = np.concatenate([self._live, np.ones(ids.size, dtype=bool)])
        self._changed()

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids (those present); returns how many vectors went."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 0 or self._ids.size == 0:
            return 0
        hit = np.isin(self._ids, ids) & self._live
        count = int(hit.sum())
        if count == 0:
            return 0
        if self.kind == "flat":
            self._index.remove_ids(faiss.IDSelectorBatch(ids))
            self._ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            self._live = np.ones(self._ids.size, dtype=bool)
        else:
            self._live[hit] = False
            if self.dead >= self.config.rebuild_dead_fraction * self.slots:
                self.compact()
        self._changed()
        return count

    def upsert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add or replace: ids already present get their new vector."""
        ids = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if ids.size == 0:
            return
        maybe_present = ids[ids <= self.max_id]  # new insights have ids above every indexed one
        if maybe_present.size:
            self.remove(maybe_present)
        self.add(ids, vectors)

    def compact(self) -> None:
        """Rebuild from the live vectors (drops dead slots; may switch kind)."""
        ids, vectors = self.vectors()
        self._build(ids, vectors)

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The live ids and their exact vectors, read back from the index itself."""
        if self._ids.size == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.dim), dtype=np.float32)
        inner = faiss.downcast_index(self._index.index)
        if self.kind == "flat":
            exact = _flat_vectors(inner, self.dim)
        elif self.kind == "hnsw":
            exact = _flat_vectors(inner.storage, self.dim)
        else:
            exact = _flat_vectors(inner.refine_index, self.dim)
        return self._ids[self._live].copy(), exact[self._live]

    # -- building -------------------------------------------------------------------------------

    def _switch_due(self, n: int) -> bool:
        limit = self.config.approximate_above
        return limit is not None and n > limit

    def _kind_for(self, n: int) -> IndexKind:
        limit = self.config.approximate_above
        if limit is None:
            return "flat"
        if self.kind == "flat":
            return self.config.approximate if n > limit else "flat"
        # hysteresis: an approximate index goes back to flat only well below the threshold
        return "flat" if n <= limit // 2 else self.config.approximate

    @classmethod
    def build(
        cls, ids: np.ndarray, vectors: np.ndarray, dim: int, config: IndexConfig | None = None
    ) -> VectorIndex:
        """A fresh index of the kind that suits ``len(ids)``."""
        index = cls(dim, config)
        index._build(np.asarray(ids, dtype=np.int64), np.asarray(vectors, dtype=np.float32).reshape(-1, dim))
        return index

    def _build(self, ids: np.ndarray, vectors: np.ndarray, kind: IndexKind | None = None) -> None:
        kind = kind or self._kind_for(ids.size)
        cfg = self.config
        if kind == "flat":
            inner: Any = faiss.IndexFlatIP(self.dim)
        elif kind == "hnsw":
            inner = faiss.IndexHNSWFlat(self.dim, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = cfg.hnsw_ef_construction
            inner.hnsw.efSearch = cfg.hnsw_ef_search
        else:
            if ids.size == 0:
                raise ValueError("an IVF-PQ index needs vectors to train on")
            n = ids.size
            nlist = cfg.ivf_nlist or int(2 * math.sqrt(n))
            nlist = max(1, min(nlist, n // 39 or 1))  # k-means wants >= 39 points per list
            # 40 points per list for the coarse k-means, and enough for 8-bit PQ codebooks
            n_train = min(n, max(40 * nlist, 39 * 256))
            sample = vectors if n_train == n else vectors[np.random.default_rng(0).choice(n, n_train, False)]
            m, nbits = _pq_layout(self.dim, n_train, cfg.pq_bytes)
            quantizer = faiss.IndexFlatIP(self.dim)
            base = faiss.IndexIVFPQ(quantizer, self.dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
            base.nprobe = cfg.ivf_nprobe
            base.train(np.ascontiguousarray(sample))
            inner = faiss.IndexRefineFlat(base)
            inner.k_factor = cfg.refine_k_factor
        self._index = faiss.IndexIDMap2(inner)  # faiss's Python wrapper keeps the sub-indexes alive
        self.kind = kind
        self._ids = np.zeros(0, dtype=np.int64)
        self._live = np.zeros(0, dtype=bool)
        if ids.size:
            self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
            self._ids = ids.copy()
            self._live = np.ones(ids.size, dtype=bool)
        self._changed()

    def _changed(self) -> None:
        self._gpu = None
        self._bitmap = None

    # -- search ---------------------------------------------------------------------------------

    def _params(self) -> tuple[Any, tuple[Any, ...]]:
        """Search parameters, and the objects they point to (kept alive by the caller while searching)."""
        selector = None
        if self.dead:
            if self._bitmap is None:
                self._bitmap = np.packbits(self._live, bitorder="little")
            selector = faiss.IDSelectorBitmap(self.slots, faiss.swig_ptr(self._bitmap))
        cfg = self.config
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=cfg.hnsw_ef_search, sel=selector), (selector,)
        if self.kind == "ivfpq":
            base = faiss.SearchParametersIVF(nprobe=cfg.ivf_nprobe, sel=selector)
            refine = faiss.IndexRefineSearchParameters(k_factor=cfg.refine_k_factor, base_index_params=base)
            return refine, (base, selector)
        return (faiss.SearchParameters(sel=selector) if selector is not None else None), (selector,)

    def _searcher(self) -> Any:
        use_gpu = self.config.use_gpu
        if self.kind == "flat" and (use_gpu or (use_gpu is None and gpu_available())):
            if self._gpu is None:
                self._gpu = faiss.index_cpu_to_gpu(
                    _gpu_resources(), 0, faiss.downcast_index(self._index.index)
                )
            return self._gpu
        return self._index.index

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of shape ``(len(queries), k)``, best first; missing places hold id -1."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        nq = queries.shape[0]
        scores = np.full((nq, k), -np.inf, dtype=np.float32)
        ids = np.full((nq, k), -1, dtype=np.int64)
        live = len(self)
        if live == 0 or k <= 0:
            return scores, ids
        kk = min(k, live)
        params, _keep_alive = self._params()
        searcher = self._searcher()
        with _omp_threads(1 if nq <= SMALL_BATCH else None):
            if params is None:
                dist, slots = searcher.search(queries, kk)
            else:
                dist, slots = searcher.search(queries, kk, params=params)
        found = slots >= 0
        scores[:, :kk] = np.where(found, dist, -np.inf)
        ids[:, :kk] = np.where(found, self._ids[np.where(found, slots, 0)], -1)
        return scores, ids

    # -- files ----------------------------------------------------------------------------------

    def save(self, path: Path, meta: dict[str, Any]) -> dict[str, Any]:
        """Write the index and then its sidecar, each atomically; returns the sidecar written."""
        path = Path(path)
        with file_lock(path, exclusive=True):
            for stale in path.parent.glob(f".{path.name}.*.tmp"):
                stale.unlink(missing_ok=True)  # left by a writer that was killed mid-save
            digest = atomic_write(path, faiss.serialize_index(self._index).tobytes())
            sidecar = {
                "format": SIDECAR_FORMAT,
                **meta,
                "kind": self.kind,
                "dim": self.dim,
                "count": len(self),
                "slots": self.slots,
                "max_insight_id": self.max_id,
                "dead_slots": np.flatnonzero(~self._live).tolist(),
                "sha256": digest,
                "bytes": path.stat().st_size,
                "written_at": datetime.now(timezone.utc).isoformat(),
            }
            atomic_write(sidecar_path(path), json.dumps(sidecar, indent=1).encode())
        return sidecar

    @classmethod
    def load(
        cls, path: Path, dim: int, config: IndexConfig | None = None
    ) -> tuple[VectorIndex, dict[str, Any]]:
        """Read an index and check it against its sidecar; raises ``IndexFileError`` if anything is off."""
        path = Path(path)
        side = sidecar_path(path)
        with file_lock(path, exclusive=False):
            if not path.exists() or not side.exists():
                raise IndexFileError(f"{path if not path.exists() else side} is missing")
            try:
                meta = json.loads(side.read_text())
                expected = str(meta["sha256"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise IndexFileError(f"sidecar {side} is unreadable: {exc}") from exc
            data = path.read_bytes()
        if meta.get("format") != SIDECAR_FORMAT:
            raise IndexFileError(f"sidecar {side} has format {meta.get('format')!r}, not {SIDECAR_FORMAT}")
        digest = hashlib.sha256(data).hexdigest()
        if digest != expected:
            raise IndexFileError(f"{path} does not match its sidecar's checksum (torn or corrupt write)")
        try:
            raw = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            raise IndexFileError(f"faiss cannot read {path}: {exc}") from exc
        index = cls(dim, config)
        if (
            raw.d != dim
            or not isinstance(raw, faiss.IndexIDMap2)
            or meta.get("kind") not in ("flat", "hnsw", "ivfpq")
        ):
            raise IndexFileError(f"{path} holds a {type(raw).__name__} of dimension {raw.d}, expected {dim}")
        index._index = raw
        index.kind = meta["kind"]
        index._ids = faiss.vector_to_array(raw.id_map).astype(np.int64)
        index._live = np.ones(index._ids.size, dtype=bool)
        try:
            dead = np.asarray(meta.get("dead_slots", []), dtype=np.int64)
            index._live[dead] = False
        except (IndexError, ValueError) as exc:
            raise IndexFileError(f"sidecar {side} names dead slots the index does not have") from exc
        if len(index) != meta.get("count"):
            raise IndexFileError(
                f"{path} holds {len(index)} live vectors, its sidecar says {meta.get('count')}"
            )
        if index.kind == "hnsw":
            faiss.downcast_index(raw.index).hnsw.efSearch = index.config.hnsw_ef_search
        return index, meta


@contextlib.contextmanager
def _omp_threads(threads: int | None) -> Iterator[None]:
    """Run the block with this many OpenMP threads (``None``: unchanged). OpenMP keeps the setting
    per calling thread, so other Python threads are not affected."""
    if threads is None:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)
