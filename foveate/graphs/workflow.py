"""Run a workflow: compile it once, then answer questions, stream progress, resume and batch.

``Workflow`` is the one object the Python API, the CLI and the REPL drive::

    services = Services(vlm=load_vlm())
    with open_checkpointer("runs.db") as saver:
        flow = Workflow("full", services, checkpointer=saver)
        out = flow.run(RunInput(image="scene.png", question="What is the color of the star?",
                                options=["red", "green", "blue", "yellow"]))
        if out.status == "waiting":            # abstained and asked a person (abstain: ask_human)
            out = flow.resume(out.run_id, {"answer": "red"})

A run's id is its LangGraph thread id: with a durable checkpointer (SQLite file, PostgreSQL URL) a run
killed mid-way continues from its last completed node with ``resume(run_id)``, in any process.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError
from langgraph.types import Command, StateSnapshot
from pydantic import BaseModel, ConfigDict, Field

from foveate.databases import quick_check
from foveate.errors import CheckpointWriteError, GraphSpecError, RunError
from foveate.graphs.compiler import compile_workflow, run_config
from foveate.graphs.nodes import builtin_registry
from foveate.graphs.nodes.common import WATCH
from foveate.graphs.registry import Registry
from foveate.graphs.services import Services
from foveate.graphs.spec import WorkflowSpec, load_workflow
from foveate.graphs.state import QAState, RunInput, RunOutput
from foveate.imaging.images import PART, load_image
from foveate.memory.memory import image_fingerprint
from foveate.zoom.config import Visit

__all__ = [
    "BUILTIN_WORKFLOWS",
    "NodeEvent",
    "SearchProgress",
    "Workflow",
    "builtin_workflow_path",
    "open_checkpointer",
    "resolve_workflow",
]

WORKFLOWS_DIR = Path(__file__).parent / "workflows"
BUILTIN_WORKFLOWS = ("direct", "zoom", "full")


class NodeEvent(BaseModel):
    """One node finished (or the run paused): what ``Workflow.stream`` yields, for progress display."""

    model_config = ConfigDict(frozen=True)
    run_id: str
    node: str
    update: dict[str, Any]
    messages: list[str]


class SearchProgress(BaseModel):
    """A node at work (a zoom search, probe by probe): what ``Workflow.stream(watch=...)`` is told between
    the ``NodeEvent``s, so that a display can count probes while a long search runs."""

    model_config = ConfigDict(frozen=True)
    run_id: str
    node: str
    """The node type at work (``zoom``)."""
    probes: int
    """Probes this node has spent so far."""
    tokens: int
    """Tokens this node has spent so far."""
    views: list[Visit] = Field(default_factory=list)
    """The views recorded since the last ``SearchProgress`` (each with its box, in the image's pixels, and
    the confidences it was ranked by): a display draws them as the search goes."""


def builtin_workflow_path(name: str) -> Path:
    return WORKFLOWS_DIR / f"{name}.yaml"


def resolve_workflow(workflow: WorkflowSpec | str | Path, registry: Registry) -> WorkflowSpec:
    """A spec from a built-in name (``direct``, ``zoom``, ``full``), a YAML file, or a spec."""
    if isinstance(workflow, WorkflowSpec):
        return workflow
    if isinstance(workflow, str) and workflow in BUILTIN_WORKFLOWS:
        workflow = builtin_workflow_path(workflow)
    path = Path(workflow)
    if not path.is_file():
        raise GraphSpecError(
            f"no workflow {str(workflow)!r}: not a built-in ({', '.join(BUILTIN_WORKFLOWS)}) nor a YAML file"
        )
    spec, _ = load_workflow(path, registry)
    return spec


@contextmanager
def open_checkpointer(target: str | Path | None) -> Iterator[BaseCheckpointSaver[Any]]:
    """Where runs are checkpointed: ``None`` in memory, a PostgreSQL URL, or a SQLite file (created)."""
    if target is None or str(target) == ":memory:":
        yield InMemorySaver()
        return
    text = str(target)
    if text.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from langgraph.checkpoint.postgres import PostgresSaver

        url = text.replace("postgresql+psycopg://", "postgresql://", 1)
        opened = PostgresSaver.from_conn_string(url)
        try:
            saver = opened.__enter__()
            saver.setup()
        except Exception as exc:  # psycopg's OperationalError and friends: only opening is wrapped
            raise RunError(f"cannot use PostgreSQL checkpoints at {url.split('@')[-1]}: {exc}") from exc
        try:
            yield saver
        finally:
            opened.__exit__(None, None, None)
        return
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = Path(text).expanduser()
    quick_check(path, "checkpoint database", RunError)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as exc:
        raise RunError(f"cannot use {path} for checkpoints: {exc}") from exc
    try:
        sqlite_saver = SqliteSaver(conn)
        try:
            sqlite_saver.setup()
        except sqlite3.Error as exc:  # a full disk: SQLite rolled the setup back
            raise RunError(f"cannot use {path} for checkpoints: {exc}") from exc
        yield sqlite_saver
    finally:
        conn.close()


def checkpoint_file(saver: BaseCheckpointSaver[Any]) -> str:
    """The file of a SQLite checkpointer (how errors name it), else its kind."""
    conn = getattr(saver, "conn", None)
    if isinstance(conn, sqlite3.Connection):
        try:
            return str(conn.execute("PRAGMA database_list").fetchone()[2])
        except sqlite3.Error:
            pass
    return type(saver).__name__


def image_cache_dir() -> Path:
    return Path(os.environ.get("FOVEATE_CACHE", Path.home() / ".cache" / "foveate")) / "images"


class Workflow:
    """A compiled workflow bound to its services (models, memory, calibration) and a checkpointer."""

    def __init__(
        self,
        workflow: WorkflowSpec | str | Path,
        services: Services,
        *,
        registry: Registry | None = None,
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        image_cache: Path | None = None,
        durability: Literal["sync", "async", "exit"] = "sync",
    ) -> None:
        """``durability="sync"``: each node's checkpoint is on disk before the next node starts, so a
        killed run loses at most the node it was in (LangGraph's default, "async", may lose more)."""
        self.durability = durability
        self.registry = registry or builtin_registry()
        self.spec = resolve_workflow(workflow, self.registry)
        # what `foveate runs` and `foveate feedback` read back: the workflow as given (a YAML file's full
        # path, a built-in's name) and the model, kept in each checkpoint's metadata
        self.source = _source(workflow, self.spec)
        self.services = services
        self.checkpointer = checkpointer if checkpointer is not None else InMemorySaver()
        self.image_cache = image_cache or image_cache_dir()
        self.graph = compile_workflow(
            self.spec, self.registry, services, QAState, checkpointer=self.checkpointer
        )

    # ------------------------------------------------------------------ inputs and configs
    def start_state(self, run: RunInput) -> QAState:
        """The initial state: the image is decoded now (a bad image fails before any node runs) and
        referred to by a file path, written to a content-addressed cache when it came from memory."""
        image = load_image(run.image)
        sha = image_fingerprint(image)  # of the pixels, as the insight memory fingerprints images
        part = image.info.get(PART)  # a frame or PDF page: said in the trace; the file alone would not say
        given = _as_file(run.image) if part is None else None
        if given is not None:
            path = given
        else:
            self.image_cache.mkdir(parents=True, exist_ok=True)
            path = self.image_cache / f"{sha}.png"
            if not path.exists():  # fast PNG settings: a 2000 px scene takes ~0.6 s at the default level
                tmp = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
                try:
                    image.save(tmp, format="PNG", compress_level=1)
                    tmp.replace(path)
                except OSError as exc:  # a full disk: nothing is half-written under the image's name
                    tmp.unlink(missing_ok=True)
                    raise CheckpointWriteError(f"cannot keep the image in {self.image_cache}: {exc}") from exc
        self.services.remember_image(str(path), image)
        return {
            "question": run.question,
            "options": list(run.options),
            "image_path": str(path),
            "image_sha256": sha,
            "budget": run.budget.model_dump(),
            "expected": run.expected,
            "category": run.category,
            "attempts": 0,
            **({"messages": [{"node": "input", "text": f"the image is {part}"}]} if part else {}),
        }

    def _fresh(self, run_id: str | None) -> str:
        """A run id for a new run: an existing run's state would add up with the new one's."""
        if run_id is None:
            return new_run_id()
        check_run_id(run_id)
        if self.graph.get_state(self.config(run_id)).values:
            raise RunError(f"run {run_id!r} already exists; resume it, or start a new run with another id")
        return run_id

    def config(self, run_id: str, **extra: Any) -> RunnableConfig:
        about = {
            "foveate_workflow": self.source,
            "foveate_model": self.services.vlm.model_id,
            "foveate_namespace": self._namespace,
        }
        return run_config(self.spec, configurable={"thread_id": run_id}, metadata=about, **extra)

    # ------------------------------------------------------------------ running
    def run(self, run: RunInput, *, run_id: str | None = None) -> RunOutput:
        """Answer one question to the end (or to a pause for a person: ``status == "waiting"``)."""
        run_id = self._fresh(run_id)
        with self._steps(run_id):
            self.graph.invoke(dict(self.start_state(run)), self.config(run_id), durability=self.durability)
        return self.output(run_id)

    def stream(
        self,
        run: RunInput | None,
        *,
        run_id: str | None = None,
        watch: Callable[[SearchProgress], None] | None = None,
    ) -> Iterator[NodeEvent]:
        """Run (or, with ``run=None``, resume ``run_id``) and yield an event as each node finishes; with
        ``watch``, also tell it each probe of a search as it happens, from the node's own thread.

        ``watch`` reaches the nodes through the run's config (``WATCH``), not LangGraph's "custom" stream
        mode: that mode runs every node on a worker thread, and Ctrl-C then waited for the node to end (a
        minute of zoom search) instead of stopping it."""
        if run is None and run_id is None:
            raise RunError("stream needs a question or the id of a run to resume")
        run_id = self._fresh(run_id) if run is not None else (run_id or new_run_id())
        payload = self.start_state(run) if run is not None else None
        if run is None:  # going on with a run writes its checkpoints as ours: only our namespace's
            self._own(self._snapshot(run_id), run_id)
        config = self.config(run_id)
        if watch is not None:
            config["configurable"] = {**config["configurable"], WATCH: _teller(watch, run_id)}
        with self._steps(run_id):
            for chunk in self.graph.stream(
                payload, config, stream_mode="updates", durability=self.durability
            ):
                for node, update in chunk.items():
                    if node == "__interrupt__":  # a pause for a person: not a node; the run's status says it
                        continue
                    update = update if isinstance(update, dict) else {"value": update}
                    said = [m["text"] for m in update.get("messages", []) if isinstance(m, dict)]
                    yield NodeEvent(run_id=run_id, node=node, update=update, messages=said)

    def resume(self, run_id: str, human: dict[str, Any] | str | None = None) -> RunOutput:
        """Continue a run: after a crash, from its last completed node; after a pause for a person,
        with their reply (``{"answer": ...}`` to answer, ``{"feedback": ...}``, or ``None`` to let it
        abstain)."""
        snapshot = self._own(self._snapshot(run_id), run_id)
        if snapshot.interrupts:
            # never an empty dict: LangGraph reads {} as a map of interrupt ids and resumes nothing
            reply: dict[str, Any] = {"answer": human} if isinstance(human, str) else dict(human or {})
            reply.setdefault("answer", None)
            with self._steps(run_id):
                self.graph.invoke(Command(resume=reply), self.config(run_id), durability=self.durability)
        elif snapshot.next:
            with self._steps(run_id):
                self.graph.invoke(None, self.config(run_id), durability=self.durability)
        return self.output(run_id)

    @contextmanager
    def _steps(self, run_id: str | None = None) -> Iterator[None]:
        """LangGraph's step-limit error names its own ``recursion_limit``; the workflow's author wrote
        ``max_steps``: say that, and where. A checkpoint that cannot be written (a full disk) stops the run
        at its last saved step: say so, and how to go on."""
        try:
            yield
        except GraphRecursionError:
            raise RunError(
                f"workflow {self.spec.name!r} ran {self.spec.max_steps} steps without reaching END: a loop "
                "that never exits? Raise max_steps in its YAML if the loop is meant to run longer"
            ) from None
        except sqlite3.Error as exc:  # LangGraph's SQLite saver writes through the sqlite3 module itself
            where = f"cannot write checkpoint database {checkpoint_file(self.checkpointer)}: {exc}"
            when = "once there is room" if "full" in str(exc).lower() else "once the cause is gone"
            if run_id is not None and self._saved(run_id):
                raise CheckpointWriteError(
                    f"{where}; run {run_id} stopped at its last saved step: {when}, resume it "
                    f"(`foveate run --resume {run_id}`, Agent.resume) to go on from there"
                ) from exc
            raise CheckpointWriteError(f"{where}; nothing of this run was saved: ask again {when}") from exc

    def _saved(self, run_id: str) -> bool:
        """Whether the run has a checkpoint to resume from (reading works on a full disk)."""
        try:
            return bool(self.graph.get_state(self.config(run_id)).values)
        except sqlite3.Error:
            return False

    def _snapshot(self, run_id: str) -> StateSnapshot:
        check_run_id(run_id)
        snapshot = self.graph.get_state(self.config(run_id))
        if not snapshot.values:
            raise RunError(f"no run {run_id!r} in this checkpointer")
        return snapshot

    def state(self, run_id: str, *, own: bool = False) -> dict[str, Any]:
        """The run's whole current state (what ``output`` summarises). ``own``: only a run begun in this
        workflow's memory namespace, else ``RunError``: feedback never reaches another user's run, even
        where the checkpoints of several are in one database."""
        snapshot = self._snapshot(run_id)
        return dict((self._own(snapshot, run_id) if own else snapshot).values)

    def _own(self, snapshot: StateSnapshot, run_id: str) -> StateSnapshot:
        """``snapshot`` when its run began in this workflow's memory namespace (or before runs recorded
        one), else ``RunError``."""
        began = (snapshot.metadata or {}).get("foveate_namespace")
        if began is not None and began != self._namespace:
            raise RunError(f"run {run_id} was answered in another memory namespace than {self._namespace!r}")
        return snapshot

    @property
    def _namespace(self) -> str | None:
        return self.services.memory.namespace if self.services.memory is not None else None

    def output(self, run_id: str) -> RunOutput:
        snapshot = self._snapshot(run_id)
        status: Literal["done", "waiting", "incomplete"] = (
            "waiting" if snapshot.interrupts else ("incomplete" if snapshot.next else "done")
        )
        pending = snapshot.interrupts[0].value if snapshot.interrupts else None
        return RunOutput.from_state(run_id, dict(snapshot.values), status=status, pending=pending)

    def batch(self, runs: Sequence[RunInput], *, max_concurrency: int = 8) -> list[RunOutput]:
        """Many questions at once (threads); the backend may batch their model calls."""
        ids = [new_run_id() for _ in runs]
        states = [self.start_state(r) for r in runs]
        configs = [self.config(i, max_concurrency=max_concurrency) for i in ids]
        with self._steps():
            self.graph.batch([dict(x) for x in states], configs, durability=self.durability)
        return [self.output(i) for i in ids]

    async def abatch(self, runs: Sequence[RunInput], *, max_concurrency: int = 8) -> list[RunOutput]:
        """``batch`` for asyncio callers. Needs a checkpointer with async methods: the in-memory one
        (the default); the SQLite and PostgreSQL savers from ``open_checkpointer`` are synchronous, so use
        ``batch`` with them."""
        ids = [new_run_id() for _ in runs]
        states = [self.start_state(r) for r in runs]
        configs = [self.config(i, max_concurrency=max_concurrency) for i in ids]
        with self._steps():
            await self.graph.abatch([dict(x) for x in states], configs, durability=self.durability)
        return await asyncio.to_thread(lambda: [self.output(i) for i in ids])


def _teller(
    watch: Callable[[SearchProgress], None], run_id: str
) -> Callable[[str, int, int, Sequence[Visit]], None]:
    return lambda node, probes, tokens, views: watch(
        SearchProgress(run_id=run_id, node=node, probes=probes, tokens=tokens, views=list(views))
    )


def _source(workflow: WorkflowSpec | str | Path, spec: WorkflowSpec) -> str:
    """How to name the workflow again: a built-in's name, a YAML file's full path, else the spec's name."""
    if isinstance(workflow, WorkflowSpec) or (isinstance(workflow, str) and workflow in BUILTIN_WORKFLOWS):
        return spec.name
    path = Path(workflow).expanduser().resolve()
    return spec.name if path.parent == WORKFLOWS_DIR.resolve() else str(path)


def _as_file(image: Any) -> Path | None:
    """The image's file, when it was given as a path to one (not a data URI, bytes or pixels)."""
    if not isinstance(image, (str, Path)) or str(image).startswith("data:"):
        return None
    try:
        path = Path(image).expanduser()
        return path.resolve() if path.is_file() else None
    except OSError:  # a name too long to be a path
        return None


def check_run_id(run_id: Any) -> None:
    """A run id is non-empty UTF-8 text (it keys the checkpoints); anything else is refused, in one line,
    before a run starts (an int, "", undecodable bytes from a command line)."""
    if not isinstance(run_id, str) or not run_id.strip():
        raise RunError(f"a run id is non-empty text, not {run_id!r}")
    try:
        run_id.encode("utf-8")
    except UnicodeEncodeError:
        raise RunError(f"run id {run_id!r} is not valid UTF-8 text") from None


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
