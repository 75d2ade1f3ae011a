"""Insight memory: lessons from past runs, stored in a database and retrieved by meaning (ICAL-style).

``InsightMemory`` is the entry point; see its module, ``foveate.memory.memory``, for an example.
"""

from foveate.memory.embeddings import (
    HashingEmbedder,
    SentenceTransformerEmbedder,
    TextEmbedder,
    fuse,
    minilm_path,
    normalise,
)
from foveate.memory.index import IndexConfig, VectorIndex
from foveate.memory.memory import (
    DEFAULT_MERGE_THRESHOLD,
    AddResult,
    Insight,
    InsightHit,
    InsightMemory,
    RunRecord,
    image_fingerprint,
)
from foveate.memory.schema import InsightKind
from foveate.memory.store import MemoryStore

__all__ = [
    "DEFAULT_MERGE_THRESHOLD",
    "AddResult",
    "HashingEmbedder",
    "IndexConfig",
    "Insight",
    "InsightHit",
    "InsightKind",
    "InsightMemory",
    "MemoryStore",
    "RunRecord",
    "SentenceTransformerEmbedder",
    "TextEmbedder",
    "VectorIndex",
    "fuse",
    "image_fingerprint",
    "minilm_path",
    "normalise",
]
