"""Insight memory: lessons from past runs, stored in a database and retrieved by meaning (ICAL-style).

``InsightMemory`` is the entry point; see its module, ``foveate.memory.memory``, for an example. One database
can hold several memories, one per namespace (``foveate.memory.namespaces``).
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
from foveate.memory.namespaces import DEFAULT_NAMESPACE, NamespaceCounts, NamespaceError, list_namespaces
from foveate.memory.schema import InsightKind
from foveate.memory.store import MemoryStore

__all__ = [
    "DEFAULT_MERGE_THRESHOLD",
    "DEFAULT_NAMESPACE",
    "AddResult",
    "HashingEmbedder",
    "IndexConfig",
    "Insight",
    "InsightHit",
    "InsightKind",
    "InsightMemory",
    "MemoryStore",
    "NamespaceCounts",
    "NamespaceError",
    "RunRecord",
    "SentenceTransformerEmbedder",
    "TextEmbedder",
    "VectorIndex",
    "fuse",
    "image_fingerprint",
    "list_namespaces",
    "minilm_path",
    "normalise",
]
