"""The runs a checkpoint database holds, read without a model: listed newest first, or one read whole.

``foveate runs`` lists them, including runs whose process was killed (SIGKILL, a lost machine): such a run
has no answer, but its last checkpoint names the nodes still to run, and ``foveate run --resume ID`` goes on
from there. Nothing here compiles a workflow or loads a model, so a run started with a YAML file that is
gone, or with a model that is not on this machine, is still listed and shown.

A run's status is read off its last checkpoint the way LangGraph decides what runs next: a node is due when
its trigger channel (``branch:to:NODE``) holds a value with a newer version than the node has seen. A pending
``__interrupt__`` write means the run is waiting for a person. tests/test_runs.py checks this reading
against ``Workflow.output`` (which asks the compiled graph) for finished, killed and paused runs, so a
LangGraph upgrade that changes the channels fails there.

One case reads differently from the graph: a process killed after a node finished but before that step's
checkpoint was written. The node's writes are saved (pending writes), so resuming applies them without
running it again, but here it is still listed as due, and its notes are not in the trace yet.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any, Literal

from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from pydantic import BaseModel, Field

from foveate.errors import RunError
from foveate.graphs.state import RunOutput, usage_of
from foveate.graphs.workflow import check_run_id
from foveate.vlm.budget import TokenUsage

__all__ = ["RunSummary", "list_runs", "read_run"]

Status = Literal["done", "waiting", "incomplete"]
_TRIGGER = "branch:to:"


class RunSummary(BaseModel):
    """One run as ``foveate runs`` lists it."""

    run_id: str
    """The run's id (its LangGraph thread id): ``foveate run --resume RUN_ID``, ``foveate runs RUN_ID``."""
    status: Status
    """``done``; ``waiting`` for a person; ``incomplete``: stopped (killed, crashed) before its end."""
    updated: str
    """When its last checkpoint was written (ISO 8601, UTC)."""
    workflow: str | None = None
    """The workflow it ran: a built-in's name or a YAML file's path (None: started before foveate kept it)."""
    model: str | None = None
    """The model it ran on (None: not recorded)."""
    question: str = ""
    """The question asked."""
    image: str | None = None
    """The image's file (an image given as bytes or pixels is kept in foveate's image cache)."""
    answer: str | None = None
    """The answer so far (None: abstained, or not reached yet)."""
    abstained: bool = False
    """Whether the workflow abstained."""
    next: list[str] = Field(default_factory=list)
    """The nodes due next (an incomplete run goes on from these)."""
    steps: int = 0
    """Steps taken (LangGraph's count: one per node that ran, from 0)."""
    probes: int = 0
    """Zoom probes spent."""
    tokens: TokenUsage = Field(default_factory=TokenUsage)
    """Tokens spent so far."""


def list_runs(saver: BaseCheckpointSaver[Any], *, limit: int | None = 20) -> list[RunSummary]:
    """The runs in ``saver``, newest first (at most ``limit``; None: all)."""
    out = []
    for run_id in _run_ids(saver, limit):
        found = _last(saver, run_id)
        if found is not None:
            out.append(_summary(run_id, found))
    return out


def read_run(saver: BaseCheckpointSaver[Any], run_id: str) -> tuple[RunSummary, RunOutput]:
    """One run: its summary and everything its state says (the messages of each node, the answer)."""
    check_run_id(run_id)
    found = _last(saver, run_id)
    if found is None:
        raise RunError(f"no run {run_id!r} in the checkpoint database")
    summary = _summary(run_id, found)
    pending = _interrupt(found)
    values = dict(found.checkpoint.get("channel_values") or {})
    return summary, RunOutput.from_state(run_id, values, status=summary.status, pending=pending)


def _run_ids(saver: BaseCheckpointSaver[Any], limit: int | None) -> Iterator[str]:
    # one query on the saver's own table, not every checkpoint's blob; checkpoint ids are uuid6, so their
    # text order is the order they were written in
    sql = (
        "SELECT thread_id FROM checkpoints WHERE checkpoint_ns = '' GROUP BY thread_id "
        "ORDER BY MAX(checkpoint_id) DESC"
    )
    conn = getattr(saver, "conn", None)
    if isinstance(conn, sqlite3.Connection):
        rows = conn.execute(sql + " LIMIT ?", (limit,)) if limit is not None else conn.execute(sql)
        yield from (str(row[0]) for row in rows)
        return
    postgres = _postgres_rows(saver, sql, limit)
    if postgres is not None:
        yield from postgres
        return
    # any other saver (PostgreSQL, in memory): every checkpoint's id once, the newest of each run kept
    # (the in-memory saver lists runs in the order they began, not by their last checkpoint)
    newest: dict[str, str] = {}
    for item in saver.list(None):
        configurable = item.config["configurable"]
        if configurable.get("checkpoint_ns", ""):
            continue
        run_id, checkpoint_id = str(configurable["thread_id"]), str(configurable["checkpoint_id"])
        newest[run_id] = max(newest.get(run_id, ""), checkpoint_id)
    ordered = sorted(newest, key=newest.__getitem__, reverse=True)
    yield from ordered[:limit] if limit is not None else ordered


def _postgres_rows(saver: BaseCheckpointSaver[Any], sql: str, limit: int | None) -> list[str] | None:
    """The same query on LangGraph's PostgreSQL saver over one connection (None: another saver)."""
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg import Connection
    except ImportError:  # the postgres extra is not installed: no such saver exists here
        return None
    if not isinstance(saver, PostgresSaver) or not isinstance(saver.conn, Connection):
        return None
    with saver.lock, saver.conn.cursor() as cursor:  # the saver's lock: its connection is not shared
        if limit is None:
            cursor.execute(sql)
        else:
            cursor.execute(sql + " LIMIT %s", (limit,))
        rows = cursor.fetchall()
    return [str(row["thread_id"] if isinstance(row, dict) else row[0]) for row in rows]


def _last(saver: BaseCheckpointSaver[Any], run_id: str) -> CheckpointTuple | None:
    return saver.get_tuple({"configurable": {"thread_id": run_id, "checkpoint_ns": ""}})


def _interrupt(found: CheckpointTuple) -> Any:
    for _task, channel, value in found.pending_writes or []:
        if channel == "__interrupt__":
            first = value[0] if isinstance(value, (list, tuple)) and value else value
            return getattr(first, "value", first)
    return None


def _due(found: CheckpointTuple) -> list[str]:
    """The nodes LangGraph would run next from this checkpoint (see the module's docstring)."""
    versions = found.checkpoint.get("channel_versions") or {}
    seen = found.checkpoint.get("versions_seen") or {}
    holding = found.checkpoint.get("channel_values") or {}
    due = []
    for channel, version in versions.items():
        if channel not in holding:  # consumed: a trigger is emptied (and its version bumped) when it fires
            continue
        if channel.startswith(_TRIGGER):
            node = channel[len(_TRIGGER) :]
        elif channel == "__start__":
            node = channel
        else:
            continue
        before = seen.get(node, {}).get(channel)
        if before is None or _newer(version, before):
            due.append(node)
    return due


def _newer(version: Any, before: Any) -> bool:
    # savers write versions as zero-padded text ("0000...0003.0.41"); a saver of plain ints compares as ints
    if isinstance(version, int) and isinstance(before, int):
        return version > before
    return str(version) > str(before)


def _summary(run_id: str, found: CheckpointTuple) -> RunSummary:
    values = found.checkpoint.get("channel_values") or {}
    meta: dict[str, Any] = dict(found.metadata or {})
    due = _due(found)
    has_interrupt = any(channel == "__interrupt__" for _t, channel, _v in found.pending_writes or [])
    status: Status = "waiting" if has_interrupt else ("incomplete" if due else "done")
    return RunSummary(
        run_id=run_id,
        status=status,
        updated=str(found.checkpoint.get("ts", "")),
        workflow=meta.get("foveate_workflow"),
        model=meta.get("foveate_model"),
        question=str(values.get("question", "")),
        image=values.get("image_path"),
        answer=None if values.get("abstained") else values.get("answer"),
        abstained=bool(values.get("abstained", False)),
        next=due,
        steps=int(meta.get("step", 0) or 0),
        probes=int(values.get("probes") or 0),
        tokens=usage_of(values),
    )
