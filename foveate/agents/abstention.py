"""Abstention agent: turn a model's option probabilities into "answer" or "I can't tell", with a guarantee.

A plain function over one question, usable without a graph: give it the option probabilities the
answering agent scored (``ScoreResult.probabilities`` or ``ZoomResult.probabilities``) and a calibration
made on held-out questions (``foveate calibrate``, stored in a ``CalibrationStore``). Two kinds:

- ``ConformalCalibration`` (LAC / APS / RAPS): answer when the prediction set is a single option;
  otherwise abstain, or return the set (``on_ambiguous="set"``).
- ``SelectiveCalibration`` (CRC / LTT): answer when the top option's probability exceeds the threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from foveate.conformal import ConformalCalibration, SelectiveCalibration, decide
from foveate.errors import ConformalError

__all__ = ["AbstentionResult", "abstain_or_answer"]


class AbstentionResult(BaseModel):
    """The decision for one question, with what it rests on."""

    model_config = ConfigDict(frozen=True)
    action: Literal["answer", "abstain", "set"]
    answer: str | None = None
    kept: list[str] = []  # the options the conformal set kept (empty for CRC / LTT)
    confidence: float  # the top option's probability
    method: str
    alpha: float
    reason: str


def abstain_or_answer(
    options: Sequence[str],
    probabilities: Sequence[float],
    calibration: ConformalCalibration | SelectiveCalibration,
    *,
    on_ambiguous: Literal["abstain", "set"] = "abstain",
    rng: np.random.Generator | None = None,
) -> AbstentionResult:
    """Decide one question. ``rng`` is only used by randomised APS scores."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 1 or len(probs) != len(options) or len(options) == 0:
        raise ConformalError(f"need one probability per option, got {len(probs)} for {len(options)} options")
    top = int(np.argmax(probs))
    confidence = float(probs[top])
    if isinstance(calibration, SelectiveCalibration):
        answered = confidence > calibration.threshold
        return AbstentionResult(
            action="answer" if answered else "abstain",
            answer=options[top] if answered else None,
            confidence=confidence,
            method=calibration.method,
            alpha=calibration.alpha,
            reason=(
                f"top probability {confidence:.3f} {'>' if answered else '<='} calibrated threshold "
                f"{calibration.threshold:.3f}"
            ),
        )
    sets = calibration.prediction_sets(probs[None, :], rng)
    decision = decide(sets, on_ambiguous=on_ambiguous)[0]
    kept = [options[int(i)] for i in np.flatnonzero(sets[0])]
    method = calibration.score.method
    if decision.action == "answer" and decision.answer is not None:
        return AbstentionResult(
            action="answer",
            answer=options[decision.answer],
            kept=kept,
            confidence=confidence,
            method=method,
            alpha=calibration.alpha,
            reason=f"the {method.upper()} set at alpha {calibration.alpha} holds one option",
        )
    return AbstentionResult(
        action="set" if decision.action == "set" else "abstain",
        kept=kept,
        confidence=confidence,
        method=method,
        alpha=calibration.alpha,
        reason=f"the {method.upper()} set at alpha {calibration.alpha} holds {len(kept)} options",
    )
