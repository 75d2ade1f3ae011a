"""Namespaces: several memories (one per user or project) in one database, that never see each other's rows.

Each run and insight carries the namespace it was written in, and an ``InsightMemory`` reads and writes
only its own (``"default"`` unless told): recall, export and feedback never cross. Each namespace has its
own FAISS index, holding only its insights, because one index for all would let another namespace's
insights fill the top ``k`` of a search, and the file of one must never stand in for another's; so the
index file's sidecar records its namespace, and one that names another is rebuilt, never used.

This module holds what concerns namespaces as such: the rule for their names, where each one's index file
lives, and their counts (to list them, and what deleting one removed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import URL, delete, func, select
from sqlalchemy.orm import Session

from foveate.errors import InsightMemoryError
from foveate.memory.schema import DEFAULT_NAMESPACE, InsightRow, RunRow
from foveate.memory.store import MemoryStore

__all__ = [
    "DEFAULT_NAMESPACE",
    "NamespaceCounts",
    "NamespaceError",
    "check_namespace",
    "delete_rows",
    "index_file",
    "list_namespaces",
    "memory_name",
    "namespace_counts",
]

# ASCII letters and digits first, so that a name is never read as a command-line option ("-x") or a
# folder ("." / ".."), and can go into a file name as it is (the index file of a namespace).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class NamespaceError(InsightMemoryError, ValueError):
    """A namespace name that is not 1 to 128 ASCII letters, digits, ``_``, ``.`` or ``-`` (first a letter or
    digit). A ``ValueError`` too: it is a bad argument, whoever passes it."""


class NamespaceCounts(BaseModel):
    """How many rows a namespace holds (or, from ``delete_namespace``, held until it was deleted)."""

    model_config = ConfigDict(frozen=True)
    namespace: str
    insights: int  # live
    deleted_insights: int  # deleted, kept until ``purge``
    runs: int


def check_namespace(name: object) -> str:
    """``name`` if it is a valid namespace, else ``NamespaceError`` naming it."""
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise NamespaceError(
            f"{name!r} is not a valid memory namespace: use 1 to 128 ASCII letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def index_file(
    database: Path | None, namespace: str, index_path: str | Path | Literal[False] | None
) -> Path | None:
    """Where a namespace's index is kept: ``index_path`` as given (for whichever namespace was asked), else
    beside a SQLite file, ``<database>.faiss`` for ``"default"`` (the file memories had before namespaces
    existed, so their caches stay valid) and ``<database>.<namespace>.faiss`` for any other; else none."""
    if index_path is None and database is not None:
        suffix = ".faiss" if namespace == DEFAULT_NAMESPACE else f".{namespace}.faiss"
        return database.with_name(database.name + suffix)
    return Path(index_path) if index_path else None


def namespace_counts(session: Session, only: str | None = None) -> list[NamespaceCounts]:
    """Every namespace that holds a row (or just ``only``, counted even when empty), by name."""
    insights = select(InsightRow.namespace, InsightRow.deleted, func.count()).group_by(
        InsightRow.namespace, InsightRow.deleted
    )
    runs = select(RunRow.namespace, func.count()).group_by(RunRow.namespace)
    if only is not None:
        insights = insights.where(InsightRow.namespace == only)
        runs = runs.where(RunRow.namespace == only)
    counts: dict[str, dict[str, int]] = {}
    if only is not None:
        counts[only] = {}
    for name, deleted, n in session.execute(insights):
        counts.setdefault(name, {})["deleted_insights" if deleted else "insights"] = n
    for name, n in session.execute(runs):
        counts.setdefault(name, {})["runs"] = n
    return [
        NamespaceCounts(
            namespace=name,
            insights=found.get("insights", 0),
            deleted_insights=found.get("deleted_insights", 0),
            runs=found.get("runs", 0),
        )
        for name, found in sorted(counts.items())
    ]


def delete_rows(session: Session, namespace: str) -> NamespaceCounts:
    """Delete a namespace's insights and runs for good (in the caller's write transaction); returns what went.

    Insights first: an insight's run would otherwise only lose its link (``ON DELETE SET NULL``).
    """
    (removed,) = namespace_counts(session, only=namespace)
    session.execute(delete(InsightRow).where(InsightRow.namespace == namespace))
    session.execute(delete(RunRow).where(RunRow.namespace == namespace))
    return removed


def list_namespaces(database: str | Path | URL) -> list[NamespaceCounts]:
    """The namespaces of a memory database with their counts, by name, read without writing anything and
    without loading an embedding model (for a command that lists them)."""
    store = MemoryStore(database, read_only=True)
    try:
        with store.reading() as session:
            return namespace_counts(session)
    finally:
        store.close()


def memory_name(database: str, namespace: str) -> str:
    """A memory's name in messages: the database's (``MemoryStore.name``, ``store.describe``), and the
    namespace unless it is the default."""
    return database if namespace == DEFAULT_NAMESPACE else f"{database} (namespace {namespace})"
