"""``foveate memory``: list, search, delete and export the insights in an insight memory.

The database is ``--db`` (a SQLite file or any SQLAlchemy URL), else ``$FOVEATE_MEMORY_DB``, else
``~/.foveate/memory.db``. Every command needs an existing memory: none of them creates one, and
the read commands (``ls``, ``search``, ``export``) open the database read-only and write nothing, not
even an index cache (``search`` reads one that exists), so a memory on a read-only mount can be read.

Only ``search`` embeds text, so only ``search`` loads an embedding model: by default the one the
stored insights were embedded with (``hashing-256`` needs no model; ``all-MiniLM-L6-v2`` is the
packaged MiniLM), or ``--embedder hashing|minilm|NAME`` (NAME: a local sentence-transformers
folder or a name in the Hugging Face cache).

Each command reads or changes one namespace (a user's or project's part of the memory: ``--namespace``,
else ``$FOVEATE_NAMESPACE``, else ``default``); ``namespaces`` lists them, ``drop-namespace`` deletes one.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from foveate.cli.common import JsonOpt, NamespaceOpt, console, fail, settings_from
from foveate.errors import FoveateError, InsightMemoryError, MemoryDatabaseError

if TYPE_CHECKING:  # the memory (SQLAlchemy, FAISS) is imported when a command runs, not with the CLI
    import numpy as np
    from sqlalchemy import URL

    from foveate.memory import InsightMemory, TextEmbedder

memory_app = typer.Typer(
    rich_markup_mode=None,
    help="The insight memory: list, search, delete and export stored insights.",
    no_args_is_help=True,
)
DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Memory database: a SQLite file or a SQLAlchemy URL [default: $FOVEATE_MEMORY_DB, memory_db in "
        "config.toml, else ~/.foveate/memory.db].",
        show_default=False,
    ),
]


def default_memory_db() -> str:
    """The memory database ``foveate.settings`` names (``$FOVEATE_MEMORY_DB``, config.toml, the default)."""
    return settings_from().memory_db


def existing_memory(db: str | None) -> URL:
    """The database's URL, after checking that a memory is there, without creating or changing anything."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import SQLAlchemyError

    from foveate.databases import as_url, check_sqlite_file, describe, sqlite_file

    url = as_url(db or default_memory_db())
    path = sqlite_file(url)
    if path is not None:
        check_sqlite_file(path, "memory database", MemoryDatabaseError)  # a folder, a loop, a FIFO
        if not path.is_file():
            hint = "" if db else " (give --db, or set $FOVEATE_MEMORY_DB)"
            raise MemoryDatabaseError(f"no memory database at {path}{hint}")
        if path.stat().st_size == 0:
            raise MemoryDatabaseError(f"memory database {path} is empty: it holds no memory")
        return url
    if url.get_backend_name() == "sqlite":
        raise MemoryDatabaseError("an in-memory SQLite database holds no memory to read")
    try:  # another server: look, without writing, for the memory's tables
        engine = create_engine(url, pool_pre_ping=True)
        try:
            with engine.connect() as conn:
                tables = set(inspect(conn).get_table_names())
        finally:
            engine.dispose()
    except (SQLAlchemyError, ImportError) as exc:
        raise MemoryDatabaseError(f"cannot open memory database {describe(url)}: {exc}") from exc
    if "insights" not in tables:
        raise MemoryDatabaseError(f"{describe(url)} holds no foveate memory")
    return url


def stored_embedders(url: URL, namespace: str) -> list[tuple[str, int]]:
    """The (embedding model name, dimension) pairs of the namespace's live insights, most used first."""
    from sqlalchemy import func, select

    from foveate.memory.schema import InsightRow
    from foveate.memory.store import MemoryStore

    store = MemoryStore(url, read_only=True)
    try:
        with store.reading() as session:
            rows = session.execute(
                select(InsightRow.embedding_model, InsightRow.dim, func.count().label("n"))
                .where(InsightRow.deleted.is_(False), InsightRow.namespace == namespace)
                .group_by(InsightRow.embedding_model, InsightRow.dim)
                .order_by(func.count().desc())
            ).all()
    finally:
        store.close()
    return [(str(name), int(dim)) for name, dim, _ in rows]


class StoredVectorsOnly:
    """Stands in for the embedder where nothing is embedded (ls, rm, export): no model is loaded.

    It carries the stored vectors' model name and dimension, so the memory opens on them.
    """

    def __init__(self, name: str, dim: int) -> None:
        self._name, self._dim = name, dim

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise InsightMemoryError("this command does not load an embedding model, so it cannot embed text")


_HASHING = re.compile(r"^hashing(?:-(\d+))?$")


def make_embedder(name: str) -> TextEmbedder:
    """An embedder by name: ``hashing`` / ``hashing-DIM``, ``minilm`` / ``all-MiniLM-L6-v2``, or a
    sentence-transformers folder or cached model name."""
    from foveate.memory import HashingEmbedder, SentenceTransformerEmbedder
    from foveate.memory.embeddings import DEFAULT_MODEL

    if not name.strip():
        raise InsightMemoryError("--embedder is empty: give hashing, minilm, or a model folder or name")
    match = _HASHING.match(name.strip().lower())
    if match:
        try:
            return HashingEmbedder(int(match.group(1)) if match.group(1) else 256)
        except ValueError as exc:
            raise InsightMemoryError(f"--embedder {name}: {exc}") from None
    if name.strip().lower() in ("minilm", DEFAULT_MODEL.lower()):
        return SentenceTransformerEmbedder()
    return SentenceTransformerEmbedder(name)


def _space(namespace: str | None) -> str:
    """The namespace a command works in: ``--namespace``, else the settings' (``$FOVEATE_NAMESPACE``...)."""
    from foveate.memory.namespaces import check_namespace

    return check_namespace(namespace if namespace is not None else settings_from().namespace)


def _where(url: URL, namespace: str) -> str:
    """The memory's name in messages, as an open ``InsightMemory`` names itself."""
    from foveate.memory.namespaces import memory_name
    from foveate.memory.store import describe

    return memory_name(describe(url), namespace)


def _open(
    url: URL, embedder: TextEmbedder, *, keep_index_file: bool, namespace: str, read_only: bool = True
) -> InsightMemory:
    """Open the memory's ``namespace`` (read-only unless told); with ``keep_index_file`` an existing index
    cache is used (never a new one)."""
    from foveate.databases import sqlite_file
    from foveate.memory import InsightMemory
    from foveate.memory.namespaces import index_file

    index_path: Any = False
    kept = index_file(sqlite_file(url), namespace, None)
    if keep_index_file and kept is not None and kept.exists():
        index_path = None  # the default, beside the database
    return InsightMemory.open(
        url, embedder=embedder, index_path=index_path, read_only=read_only, namespace=namespace
    )


def _open_without_model(url: URL, *, namespace: str, read_only: bool = True) -> InsightMemory:
    stored = stored_embedders(url, namespace)
    name, dim = stored[0] if stored else ("none", 8)
    return _open(
        url, StoredVectorsOnly(name, dim), keep_index_file=False, read_only=read_only, namespace=namespace
    )


@memory_app.command("ls")
def memory_ls(
    db: DbOpt = None,
    include_deleted: Annotated[
        bool, typer.Option("--include-deleted", help="Show deleted ones too [default: off].")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Show at most this many [default: all].")
    ] = None,
    as_json: JsonOpt = False,
    namespace: NamespaceOpt = None,
) -> None:
    """List the stored insights, oldest first."""
    try:
        space = _space(namespace)
        url = existing_memory(db)
        with _open_without_model(url, namespace=space) as memory:
            insights = list(memory.insights(include_deleted=include_deleted))
    except FoveateError as exc:
        raise fail(exc) from None
    shown = insights[:limit] if limit else insights
    if as_json:
        for insight in shown:
            typer.echo(insight.model_dump_json())
        return
    with_runs = any(i.run_id is not None for i in shown)
    table = Table()
    table.add_column("id", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("text", min_width=12)
    for name in ("seen", "used", "helped", *(["run"] if with_runs else []), "created"):
        table.add_column(name)
    for i in shown:
        kind = f"{i.kind.value}\n[red](deleted)[/]" if i.deleted else i.kind.value
        row = [str(i.id), kind, escape(i.text), str(i.times_seen), str(i.times_used), str(i.times_helpful)]
        if with_runs:
            row.append("" if i.run_id is None else str(i.run_id))
        row.append(i.created_at.strftime("%Y-%m-%d"))
        table.add_row(*row)
    console.print(table)
    models = ", ".join(sorted({i.embedding_model for i in insights})) or "-"
    console.print(
        f"{len(shown)} of {len(insights)} insights in {_where(url, space)} (embedded by {models})",
        soft_wrap=True,
    )


@memory_app.command("search")
def memory_search(
    query: Annotated[str, typer.Argument(help="A question or phrase to find insights for.")],
    db: DbOpt = None,
    k: Annotated[int, typer.Option("--k", min=1, help="How many insights to return.")] = 5,
    embedder: Annotated[
        str | None,
        typer.Option(
            "--embedder",
            help="hashing, minilm, or a sentence-transformers folder/name [default: the one the "
            "stored insights were embedded with].",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOpt = False,
    namespace: NamespaceOpt = None,
) -> None:
    """The stored insights closest in meaning to QUERY, best first."""
    from foveate.memory.store import describe

    try:
        space = _space(namespace)
        if not query.strip():
            raise InsightMemoryError("the query is empty: give a question or phrase to search for")
        url = existing_memory(db)
        if embedder is None:
            stored = stored_embedders(url, space)
            if not stored:
                if not as_json:  # no lines: no insights
                    console.print(f"no insights in {describe(url)}")
                return
            if len(stored) > 1:
                found = ", ".join(f"{m} ({d}-d)" for m, d in stored)
                raise InsightMemoryError(
                    f"memory {describe(url)} holds insights embedded by several models ({found}); "
                    "choose one with --embedder"
                )
            embedder = stored[0][0]
        model = make_embedder(embedder)
        with _open(url, model, keep_index_file=True, namespace=space) as memory:
            hits = memory.search(query, k=k)
    except FoveateError as exc:
        raise fail(exc) from None
    if as_json:  # each hit as the stored insight, with its rank and score
        for rank, hit in enumerate(hits, start=1):
            typer.echo(json.dumps({"rank": rank, "score": hit.score, **hit.insight.model_dump(mode="json")}))
        return
    table = Table()
    for name in ("rank", "score", "id", "kind"):
        table.add_column(name, no_wrap=True)
    table.add_column("text", min_width=16)
    for rank, hit in enumerate(hits, start=1):
        table.add_row(
            str(rank),
            f"{hit.score:.3f}",
            str(hit.insight.id),
            hit.insight.kind.value,
            escape(hit.insight.text),
        )
    console.print(table)
    console.print(f"{len(hits)} insights (embedder: {model.name})", soft_wrap=True)


@memory_app.command("rm")
def memory_rm(
    ids: Annotated[list[int], typer.Argument(min=1, max=2**63 - 1, help="Ids of the insights to delete.")],
    db: DbOpt = None,
    namespace: NamespaceOpt = None,
) -> None:
    """Delete insights by id. If any id is unknown (or already deleted), nothing is deleted."""
    try:
        space = _space(namespace)
        url = existing_memory(db)
        with _open_without_model(url, read_only=False, namespace=space) as memory:
            missing = [i for i in dict.fromkeys(ids) if (found := memory.get(i)) is None or found.deleted]
            if missing:
                raise InsightMemoryError(
                    f"memory {_where(url, space)} has no insight {', '.join(map(str, missing))}; "
                    "nothing deleted"
                )
            count = memory.delete(ids)
    except FoveateError as exc:
        raise fail(exc) from None
    said = f"deleted {count} insight{'s' if count != 1 else ''} from {_where(url, space)}"
    console.print(said, soft_wrap=True)


@memory_app.command("export")
def memory_export(
    path: Annotated[str, typer.Argument(help="JSON Lines file to write, or - for standard output.")],
    db: DbOpt = None,
    include_deleted: Annotated[
        bool, typer.Option("--include-deleted", help="Export deleted ones too [default: off].")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the file if it exists [default: off].")
    ] = False,
    namespace: NamespaceOpt = None,
) -> None:
    """Write the insights as JSON Lines (one object per insight, no vectors)."""
    from foveate.databases import sqlite_file
    from foveate.files import output_file

    try:
        space = _space(namespace)
        url = existing_memory(db)
        if path != "-":
            target = output_file(path, "export file", InsightMemoryError)
            _check_export_target(target, sqlite_file(url), force)
        with _open_without_model(url, namespace=space) as memory:
            if path == "-":
                memory.export(sys.stdout, include_deleted=include_deleted)
                return
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            try:
                count = memory.export(tmp, include_deleted=include_deleted)
                os.replace(tmp, target)
            except OSError as exc:
                raise InsightMemoryError(f"cannot write {target}: {exc.strerror or exc}") from None
            finally:
                tmp.unlink(missing_ok=True)
    except FoveateError as exc:
        raise fail(exc) from None
    console.print(f"exported {count} insights from {_where(url, space)} to {target}", soft_wrap=True)


@memory_app.command("namespaces")
def memory_namespaces(db: DbOpt = None, as_json: JsonOpt = False) -> None:
    """List the namespaces that hold insights or runs, with their counts."""
    from foveate.memory.namespaces import list_namespaces

    try:
        url = existing_memory(db)
        found = list_namespaces(url)
    except FoveateError as exc:
        raise fail(exc) from None
    if as_json:
        for counts in found:
            typer.echo(counts.model_dump_json())
        return
    table = Table()
    for name in ("namespace", "insights", "deleted", "runs"):
        table.add_column(name, no_wrap=True)
    for c in found:
        table.add_row(escape(c.namespace), str(c.insights), str(c.deleted_insights), str(c.runs))
    console.print(table)


@memory_app.command("drop-namespace")
def memory_drop_namespace(
    namespace: Annotated[str, typer.Argument(help="The namespace whose insights and runs go, for good.")],
    db: DbOpt = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Delete without asking (needed without a terminal) [default: off].")
    ] = False,
) -> None:
    """Delete a namespace: its insights, runs and index, for good. Other namespaces are untouched."""
    from foveate.memory.namespaces import list_namespaces

    try:
        space = _space(namespace)
        url = existing_memory(db)
        held = [c.namespace for c in list_namespaces(url)]
        if space not in held:  # a typo deletes nothing, and says so rather than "deleted 0"
            raise InsightMemoryError(
                f"{_where(url, 'default')} has no namespace {space} (it has {', '.join(held) or 'none'}); "
                "nothing deleted"
            )
        if not yes:
            if not sys.stdin.isatty():
                raise InsightMemoryError(f"this deletes namespace {space} for good: add --yes to go on")
            typer.confirm(f"delete namespace {space} of {_where(url, space)} for good?", abort=True)
        with _open_without_model(url, read_only=False, namespace=space) as memory:
            gone = memory.delete_namespace()
    except FoveateError as exc:
        raise fail(exc) from None
    console.print(
        f"deleted namespace {space}: {gone.insights + gone.deleted_insights} insights and {gone.runs} runs "
        f"from {_where(url, 'default')}",
        soft_wrap=True,
    )


def _check_export_target(target: Path, database: Path | None, force: bool) -> None:
    """Refuse to write over the memory itself (its database, journal or index files), ever, and over any
    other existing file unless ``force``: ``foveate memory export mem.db --db mem.db`` once replaced the
    database with its own export."""
    if database is not None and target.exists():
        suffixes = ("", "-wal", "-shm", ".faiss", ".faiss.json", ".faiss.lock")
        for base in {database, database.resolve()}:  # by file identity: a symlink, a bind mount, any case
            # and every namespace's index files (<database>.<namespace>.faiss...)
            owned = [base.with_name(base.name + suffix) for suffix in suffixes]
            owned += [p for p in base.parent.glob(f"{glob.escape(base.name)}.*.faiss*")]
            for own in owned:
                if own.exists() and os.path.samefile(target, own):
                    raise InsightMemoryError(
                        f"{target} is part of the memory being exported; write somewhere else"
                    )
    if target.exists() and not force:
        raise InsightMemoryError(f"{target} exists: add --force to replace it, or write somewhere else")
