"""From a prediction set to what the system does: answer, abstain, or hand back the set.

A set with exactly one option is the natural moment to answer. Mind what the guarantee
covers: the true option is in the set for ``1 - alpha`` of *all* questions, so the error among
singleton answers can reach ``alpha`` divided by the share of singletons. When the error among
answered questions must itself be bounded, use ``risk_control`` instead.

A set with several options is ambiguous; an empty set (possible at larger alphas) means
no option is plausible. Both abstain by default; callers
that can use a shortlist (ask the user, look closer at the image) can ask for the set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from foveate.errors import ConformalError

__all__ = ["AbstentionResult", "Action", "Decision", "decide", "one_question", "singleton_answers"]

Action = Literal["answer", "abstain", "set"]


class AbstentionResult(BaseModel):
    """What to do with one question's answer, by option name, with what the decision rests on."""

    model_config = ConfigDict(frozen=True)
    action: Action
    """``answer``, ``abstain``, or ``set`` (several options kept, handed back to the caller)."""
    answer: str | None = None
    """The option answered, when ``action`` is ``answer``."""
    kept: list[str] = Field(default_factory=list)
    """The options a conformal set kept (empty for a confidence threshold)."""
    confidence: float
    """The top option's probability."""
    method: str
    alpha: float
    reason: str
    """One sentence a person can read: why it answered or abstained."""


def one_question(options: Sequence[str], probabilities: Sequence[float]) -> npt.NDArray[np.float64]:
    """One question's option probabilities as a vector, checked against its options."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 1 or len(probs) != len(options) or len(options) == 0:
        raise ConformalError(f"need one probability per option, got {len(probs)} for {len(options)} options")
    return probs


class Decision(BaseModel):
    """What to do with one question, and the options the conformal set kept."""

    model_config = ConfigDict(frozen=True)
    action: Action
    answer: int | None = None
    options: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _answer_only_when_answering(self) -> Decision:
        if (self.action == "answer") != (self.answer is not None):
            raise ValueError("a Decision has an answer exactly when its action is 'answer'")
        return self


def decide(sets: Any, on_ambiguous: Literal["abstain", "set"] = "abstain") -> list[Decision]:
    """One decision per row of a boolean (m, K) prediction-set matrix.

    A singleton set answers with its option. Several options abstain, or with
    ``on_ambiguous="set"`` return the set for the caller to narrow down. An empty set abstains.
    """
    matrix = np.asarray(sets)
    if matrix.ndim != 2 or matrix.dtype != np.bool_:
        raise ConformalError(
            f"sets must be a boolean (questions, options) matrix, got {matrix.dtype} of shape {matrix.shape}"
        )
    if on_ambiguous not in ("abstain", "set"):
        raise ConformalError(f"on_ambiguous must be 'abstain' or 'set', got {on_ambiguous!r}")
    decisions = []
    for row in matrix:
        options = tuple(int(i) for i in np.flatnonzero(row))
        if len(options) == 1:
            decisions.append(Decision(action="answer", answer=options[0], options=options))
        elif len(options) > 1 and on_ambiguous == "set":
            decisions.append(Decision(action="set", options=options))
        else:
            decisions.append(Decision(action="abstain", options=options))
    return decisions


def singleton_answers(sets: Any) -> np.ndarray:
    """Vectorised ``decide``: the option of each singleton set, -1 where the system abstains."""
    matrix = np.asarray(sets)
    if matrix.ndim != 2 or matrix.dtype != np.bool_:
        raise ConformalError(f"sets must be a boolean (questions, options) matrix, got shape {matrix.shape}")
    single = matrix.sum(axis=1) == 1
    return np.where(single, np.argmax(matrix, axis=1), -1)
