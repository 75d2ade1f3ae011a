"""The abstention gate: a calibration decides, for one answer, whether to give it, with a guarantee.

A ``Calibration`` is anything with ``alpha`` and ``decide(options, probabilities)``: made on held-out
questions (``foveate calibrate``, stored in a ``CalibrationStore``), applied to one new question's option
probabilities (``ScoreResult.probabilities``, ``ZoomResult.probabilities``). Built in:

- ``ConformalCalibration`` (LAC / APS / RAPS): answer when the prediction set is a single option;
  otherwise abstain, or return the set (``on_ambiguous="set"``).
- ``SelectiveCalibration`` (CRC / LTT): answer when the top option's probability exceeds the threshold.

A new conformal method is one class with ``decide`` (and a record type in ``records``); the gate, the
``abstain`` node and ``Agent`` take it as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from foveate.conformal.actions import AbstentionResult

__all__ = ["AbstentionResult", "Calibration", "abstain_or_answer"]


@runtime_checkable
class Calibration(Protocol):
    """A calibrated rule that decides one question: answer, abstain, or hand back a set."""

    alpha: float
    """The risk level it was calibrated for."""

    def decide(
        self,
        options: Sequence[str],
        probabilities: Sequence[float],
        *,
        on_ambiguous: Literal["abstain", "set"] = "abstain",
        rng: Any = None,
    ) -> AbstentionResult: ...


def abstain_or_answer(
    options: Sequence[str],
    probabilities: Sequence[float],
    calibration: Calibration,
    *,
    on_ambiguous: Literal["abstain", "set"] = "abstain",
    rng: np.random.Generator | None = None,
) -> AbstentionResult:
    """Decide one question with ``calibration``. ``rng`` is only used by randomised APS scores."""
    return calibration.decide(options, probabilities, on_ambiguous=on_ambiguous, rng=rng)
