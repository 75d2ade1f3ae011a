"""What ``Agent`` is given, checked when it is given: a wrong type fails at construction (or before a
question runs) in one line naming the argument, not as an ``AttributeError`` deep in the first question, nor
after a question has been answered and paid for (``truth_boxes``)."""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any, TypeGuard

from langgraph.checkpoint.base import BaseCheckpointSaver
from sqlalchemy import URL

from foveate.conformal import ConformalCalibration, SelectiveCalibration
from foveate.conformal.answer_gate import AnswerGate
from foveate.errors import FoveateError
from foveate.graphs.registry import Registry
from foveate.graphs.spec import WorkflowSpec
from foveate.imaging.boxes import Box
from foveate.memory import InsightMemory
from foveate.memory.namespaces import DEFAULT_NAMESPACE, check_namespace
from foveate.vlm.budget import TokenBudget
from foveate.zoom import StrategyRegistry

__all__ = ["check_agent_args", "check_questions", "listable", "open_memory", "truth_boxes"]

_PATHLIKE = (str, os.PathLike)
# what foveate calls on a model (a reasoner needs only the first two); a duck-typed one needs no more
_VLM_CALLS = ("generate", "score", "yes_probability")


def _wrong(name: str, value: Any, expected: str) -> FoveateError:
    return FoveateError(f"Agent({name}=...) takes {expected}, not {type(value).__name__} {value!r:.60}")


def check_agent_args(**given: Any) -> None:
    """Each of ``Agent``'s arguments of the right kind; a ``FoveateError`` naming the first that is not."""
    kinds: dict[str, tuple[tuple[type, ...], str]] = {
        "workflow": ((*_PATHLIKE, WorkflowSpec), "a built-in name, a YAML path or a WorkflowSpec"),
        "budget": ((TokenBudget, type(None)), "a TokenBudget or None"),
        "memory": ((*_PATHLIKE, URL, InsightMemory, type(None)), "an InsightMemory, a path or URL, or None"),
        "namespace": ((str, type(None)), "a namespace name or None"),
        "calibration": (
            (AnswerGate, ConformalCalibration, SelectiveCalibration, type(None)),
            "an AnswerGate, ConformalCalibration, SelectiveCalibration or None",
        ),
        "checkpoints": (
            (*_PATHLIKE, BaseCheckpointSaver, type(None)),
            "a path or URL, a checkpointer, or None",
        ),
        "registry": ((Registry, type(None)), "a Registry or None"),
        "strategies": ((StrategyRegistry, type(None)), "a StrategyRegistry or None"),
        "allow_calibration_mismatch": ((bool,), "True or False"),
        "adaptive": ((bool,), "True or False"),
        "coalesce": ((bool,), "True or False"),
    }
    _check_model("vlm", given.pop("vlm"), _VLM_CALLS)
    if given.get("reasoner") is not None:
        _check_model("reasoner", given.pop("reasoner"), _VLM_CALLS[:2])
    given.pop("reasoner", None)
    for name, value in given.items():
        types, expected = kinds.get(name, ((object,), ""))
        if not isinstance(value, types):
            raise _wrong(name, value, expected)
    limit = given.get("max_options")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 2):
        raise _wrong("max_options", limit, "an int of at least 2")


def open_memory(memory: Any, namespace: str | None) -> tuple[InsightMemory | None, bool]:
    """The agent's memory, and whether the agent opened it (and so closes it): ``memory`` itself, or the
    database at that path or URL opened in ``namespace`` ("default" when None)."""
    if memory is None or isinstance(memory, InsightMemory):
        if memory is not None and namespace is not None and check_namespace(namespace) != memory.namespace:
            raise FoveateError(
                f"Agent(namespace={namespace!r}) was given an InsightMemory of namespace "
                f"{memory.namespace!r}: open the memory in the namespace you mean, or leave namespace out"
            )
        return memory, False
    return InsightMemory.open(memory, namespace=namespace or DEFAULT_NAMESPACE), True


def _check_model(name: str, model: Any, calls: tuple[str, ...]) -> None:
    """A model foveate can call: ``model_id``, ``profile`` and the calls it makes (not every method of the
    ``VLM`` protocol: a duck-typed text reasoner needs only ``generate`` and ``score``). Attributes are
    looked up on the class where they can be, so that a lazy ``profile`` is not run here."""
    missing = [c for c in calls if not callable(getattr(type(model), c, None))]
    missing += [a for a in ("model_id", "profile") if not (hasattr(type(model), a) or a in _vars_of(model))]
    if model is None or missing:
        raise _wrong(name, model, f"a VLM (TransformersVLM, OpenAIVLM, load_vlm(...)); missing {missing}")


def _vars_of(obj: Any) -> dict[str, Any]:
    try:
        return dict(vars(obj))
    except TypeError:  # no __dict__ (None, a str)
        return {}


def listable(values: Any) -> TypeGuard[Iterable[Any]]:
    """Whether ``list(values)`` keeps the items the caller meant: a list, tuple, numpy array, pandas
    Series or generator, but not a str (its characters), a mapping (its keys) or a set (any order)."""
    return isinstance(values, Iterable) and not isinstance(values, (str, bytes, Mapping, Set))


def truth_boxes(values: Any) -> list[Box]:
    """Ground-truth boxes as four whole pixels each, checked before the question runs."""
    if not listable(values):
        raise FoveateError(f"truth_boxes are a list of (x0, y0, x1, y1), not {type(values).__name__}")
    boxes = []
    for given in values:
        box = list(given) if listable(given) else None
        if box is None or len(box) != 4:
            raise FoveateError(f"a truth box is (x0, y0, x1, y1), got {given!r}")
        if not all(isinstance(v, numbers.Real) and math.isfinite(float(v)) for v in box):
            raise FoveateError(f"a truth box holds four finite numbers, got {list(box)}")
        x0, y0, x1, y1 = (int(v) for v in box)
        if x1 <= x0 or y1 <= y0:
            raise FoveateError(f"a truth box needs x0 < x1 and y0 < y1, got {list(box)}")
        boxes.append((x0, y0, x1, y1))
    return boxes


def check_questions(questions: Any, max_concurrency: Any) -> list[tuple[str, Any, Sequence[str] | None]]:
    """``ask_many``'s ``(question, image, options)`` triples (a pair means no options), from any iterable."""
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise FoveateError(f"max_concurrency is a whole number of at least 1, not {max_concurrency!r}")
    if not listable(questions):
        raise FoveateError("ask_many takes a list of (question, image, options) tuples")
    out = []
    for item in questions:
        if not isinstance(item, (tuple, list)) or len(item) not in (2, 3):
            raise FoveateError(f"ask_many takes (question, image, options) tuples, got {item!r:.80}")
        out.append((item[0], item[1], item[2] if len(item) == 3 else None))
    return out
