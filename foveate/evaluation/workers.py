"""Questions in flight at once, the way that is fastest for where the model runs.

- **A server** (``OpenAIVLM``): threads in this process, one request each; the server batches them.
- **A local model on a GPU, or a large one**: threads sharing one ``CoalescingVLM``, so that concurrent
  probes share forward passes (the GPU does the work and the GIL is free meanwhile).
- **A small local model on the CPU**: this process and one worker process per other core, each with its
  own copy of the agent. A local ``TransformersVLM`` runs one call at a time (its lock) and the Python
  around each call holds the GIL, so threads in one process use about one core whatever their number: on
  this project's 2-core machine 8 coalesced threads answered at 0.97x the questions per second of one at
  a time, this process and one worker at 1.37x (docs/benchmarks/batch.md).

``Answerers`` hides the choice: ``ask(label, question)`` from any thread, blocking until the answer comes.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Literal

from foveate.agent import Agent, Answer
from foveate.evaluation.datasets import BenchQuestion
from foveate.graphs.spec import WorkflowSpec
from foveate.settings import FoveateSettings
from foveate.vlm.base import VLM

__all__ = ["AgentRecipe", "Answerers", "Mode", "choose_mode", "is_server"]

log = logging.getLogger(__name__)

Mode = Literal["threads", "coalesced", "processes"]

SMALL_MODEL_PARAMETERS = 500_000_000  # fp32 ~2 GB: a copy per worker process is affordable on a CPU box


@dataclass(frozen=True)
class AgentRecipe:
    """How to build an agent, picklable, so that a worker process builds the same one: the settings (model,
    budget, gate), the workflow, and whether the gate is off (an evaluation answers every question)."""

    settings: FoveateSettings
    workflow: WorkflowSpec | str
    gate: bool = True
    overrides: dict[str, Any] = field(default_factory=dict)

    def build(self, vlm: VLM | None = None, **extra: Any) -> Agent:
        kwargs: dict[str, Any] = {"workflow": self.workflow, **self.overrides, **extra}
        if vlm is not None:
            kwargs["vlm"] = vlm
        if not self.gate:
            kwargs["calibration"] = None
        return Agent.from_defaults(settings=self.settings, **kwargs)


def is_server(vlm: VLM) -> bool:
    """Whether the model is behind an OpenAI-compatible server (which batches parallel requests itself)."""
    from foveate.vlm.openai_vlm import OpenAIVLM

    return isinstance(vlm, OpenAIVLM)


def choose_mode(vlm: VLM, concurrency: int) -> tuple[Mode, int]:
    """How ``concurrency`` questions run at once on ``vlm``, and how many worker processes (0: none)."""
    if concurrency <= 1 or is_server(vlm):
        return "threads", 0
    from foveate.vlm.transformers_vlm import TransformersVLM

    small = isinstance(vlm, TransformersVLM) and vlm.model.num_parameters() <= SMALL_MODEL_PARAMETERS
    if isinstance(vlm, TransformersVLM) and vlm.device.type == "cpu" and small and (os.cpu_count() or 1) > 1:
        return "processes", _workers(concurrency)
    return "coalesced", 0


def _workers(concurrency: int) -> int:
    """Worker processes beside this one (which answers too): one per other core, no more than needed."""
    return max(1, min(concurrency - 1, (os.cpu_count() or 2) - 1))


class Answerers:
    """One agent per label (``recipes``), asked from any thread; each worker process builds them all."""

    def __init__(
        self,
        vlm: VLM,
        recipes: dict[str, AgentRecipe],
        *,
        concurrency: int = 1,
        mode: Mode | None = None,
        letters: bool = False,
    ) -> None:
        """``mode``: force one way of running questions at once (None: ``choose_mode``'s choice).
        ``letters``: ask multiple-choice questions with lettered options (``BenchQuestion.asked``)."""
        self.letters = letters
        self.mode, self.workers = choose_mode(vlm, concurrency)
        if mode is not None and mode != self.mode:
            self.mode = mode
            self.workers = _workers(concurrency) if mode == "processes" else 0
        self.concurrency = concurrency
        self.recipes = recipes
        self._stack = ExitStack()
        self.agents: dict[str, Agent] = {}
        model: VLM = vlm
        if self.mode == "coalesced":
            from foveate.vlm.batching import CoalescingVLM

            model = self._stack.enter_context(CoalescingVLM(vlm))
        # this process's agents: they answer in thread modes, and name what is measured in every mode
        try:
            for label, recipe in recipes.items():
                agent = recipe.build(model)
                self._stack.callback(agent.close)
                self.agents[label] = agent
        except BaseException:  # a workflow that does not load: close what was opened, then say why
            self._stack.close()
            raise
        # lanes: who answers the next question. This process is one lane from the start; each worker
        # process is another, taking one question at a time, so no question waits in a worker's queue
        # while a lane is free, and this process answers while the workers are still starting.
        self._lanes: queue.Queue[int] = queue.Queue()
        self._lanes.put(0)
        self._pool: ProcessPoolExecutor | None = None
        self._ready: list[Future[None]] = []
        if self.mode == "processes":
            threads = max(1, (os.cpu_count() or 1) // (self.workers + 1))
            # every process gets its share of the cores: torch's default (all of them, in each process)
            # oversubscribes, measured 33.3 s against 29.9 s for 120 questions on 2 cores. Process-wide, so
            # this process's previous setting comes back on close.
            import torch

            self._stack.callback(torch.set_num_threads, torch.get_num_threads())
            torch.set_num_threads(threads)
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                # spawn, not fork: a forked copy of a process holding torch's thread pools can hang
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(recipes, threads),
            )
            self._stack.callback(self._pool.shutdown, wait=True, cancel_futures=True)
            for lane in range(1, self.workers + 1):
                # start the workers now, not at the first question
                self._ready.append(self._pool.submit(_ready))
                self._lanes.put(lane)
        log.info("%d in flight: %s (%d worker processes)", concurrency, self.mode, self.workers)

    def describe(self) -> str:
        if self.mode == "processes":
            plural = "es" if self.workers > 1 else ""
            return (
                f"this process and {self.workers} worker process{plural}, each with its own copy of the "
                "model (a small model on the CPU)"
            )
        if self.mode == "coalesced":
            return "threads sharing forward passes (CoalescingVLM)"
        return "threads, one request each" if self.concurrency > 1 else "one at a time"

    def wait_ready(self) -> None:
        """Block until every worker process has built its agents (a measurement that must not count their
        start-up calls this first; ``foveate batch`` does not, and answers in this process meanwhile)."""
        for future in self._ready:
            future.result()

    def ask(self, label: str, question: BenchQuestion, *, boxes: bool = False) -> Answer:
        """``label``'s answer to ``question`` (with ``boxes``, graded for grounding against its boxes)."""
        if self._pool is None:
            return _ask(self.agents[label], question, boxes, self.letters)
        lane = self._lanes.get()
        try:
            if lane == 0:
                return _ask(self.agents[label], question, boxes, self.letters)
            return self._pool.submit(_ask_in_worker, label, question, boxes, self.letters).result()
        finally:
            self._lanes.put(lane)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Answerers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ask(agent: Agent, q: BenchQuestion, boxes: bool, letters: bool) -> Answer:
    text, options = q.asked(letters=letters)
    return agent.ask(
        text,
        image=q.image,
        options=options or None,
        truth_boxes=q.boxes if boxes and q.boxes else None,
    )


# ---------------------------------------------------------------------------------------------- workers
# A worker process's own agents: built once by the pool's initializer, used by every task it runs. This is
# state of the worker process (which exists for nothing else), never of the process that imports foveate.
_WORKER: dict[str, Agent] = {}


def _start_worker(recipes: dict[str, AgentRecipe], threads: int) -> None:
    import threading

    import torch

    # a parent killed with SIGKILL never tells its workers: without this they wait forever on its queue,
    # each holding a model (seen: two orphans of 650 MB idle after `kill -9` of `foveate batch`)
    parent = multiprocessing.parent_process()
    if parent is not None:
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    torch.set_num_threads(threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the parent's progress bar is the one the user reads
    hf_logging.set_verbosity_error()
    for label, recipe in recipes.items():
        _WORKER[label] = recipe.build()


def _ready() -> None:
    """Nothing: submitted once per worker so that the pool starts it (and builds its agents) at once."""


def _exit_with(sentinel: int) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(1)


def _ask_in_worker(label: str, question: BenchQuestion, boxes: bool, letters: bool) -> Answer:
    return _ask(_WORKER[label], question, boxes, letters)
