"""The calibration procedure: labelled option probabilities -> a calibration per method -> stored records.

``calibrate_methods`` runs every requested method on one (n, K) matrix of option probabilities and the
true options: split conformal sets (LAC, APS) and answer-or-abstain thresholds on the top option's
probability (conformal risk control, Learn then Test). Each result comes with its coverage / accuracy *on
the calibration questions themselves*: an in-sample check, not an estimate for new questions.
``save_calibrations`` stores them under the model and the prompt template; ``find_calibration`` and
``load_calibration_file`` get one back for the gate. ``foveate calibrate``, ``foveate run --alpha`` and
``Agent`` use these, so a record written by one is the record the others read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from foveate.conformal.records import CalibrationRecord, CalibrationStore, template_hash
from foveate.conformal.risk_control import SelectiveCalibration, crc_threshold, ltt_threshold
from foveate.conformal.split import ConformalCalibration, calibrate
from foveate.errors import CalibrationStoreError, ConformalError, FoveateError

__all__ = [
    "METHODS",
    "PROMPT_TEMPLATE",
    "MethodResult",
    "calibrate_methods",
    "find_calibration",
    "load_calibration_file",
    "save_calibrations",
]

PROMPT_TEMPLATE = "{question}"
"""How a calibration question is put to the model (its hash keys the stored record)."""

METHODS = ("lac", "aps", "crc", "ltt")
"""The methods ``foveate calibrate`` runs (``all``)."""


@dataclass(frozen=True)
class MethodResult:
    """One method's calibration and how it does on the calibration questions themselves (in-sample)."""

    method: str
    result: ConformalCalibration | SelectiveCalibration
    coverage: float | None
    """Share of questions whose set holds the true option (sets only)."""
    mean_set_size: float | None
    """Mean prediction-set size (sets only)."""
    answered: float | None
    """Share of questions answered (thresholds only)."""
    selective_accuracy: float | None
    """Accuracy among the answered (thresholds only; None when none is answered)."""

    @property
    def threshold_text(self) -> str:
        value, selective = self.result.threshold, isinstance(self.result, SelectiveCalibration)
        if math.isinf(value) and value > 0:
            return "inf (answer none)" if selective else "inf (every option)"
        if math.isinf(value):
            return "-inf (answer all)"
        return f"{value:.4f}"


def calibrate_methods(
    probs: Any, labels: Any, alpha: float, methods: tuple[str, ...] = METHODS, *, delta: float = 0.1
) -> list[MethodResult]:
    """Every method of ``methods`` calibrated on ``probs`` (n, K) and ``labels`` (n,), in order."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConformalError(f"unknown calibration method {unknown[0]!r}: use {', '.join(METHODS)}")
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    top = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    out: list[MethodResult] = []
    for name in methods:
        if name in ("lac", "aps"):
            sets_result = calibrate(p, y, alpha, name)
            sets = sets_result.prediction_sets(p)
            out.append(
                MethodResult(
                    name,
                    sets_result,
                    coverage=float(sets[np.arange(len(y)), y].mean()),
                    mean_set_size=float(sets.sum(axis=1).mean()),
                    answered=None,
                    selective_accuracy=None,
                )
            )
        else:
            selective = (
                crc_threshold(top, correct, alpha)
                if name == "crc"
                else ltt_threshold(top, correct, alpha, delta)
            )
            answered = selective.answer_mask(top)
            out.append(
                MethodResult(
                    name,
                    selective,
                    coverage=None,
                    mean_set_size=None,
                    answered=float(answered.mean()),
                    selective_accuracy=float(correct[answered].mean()) if answered.any() else None,
                )
            )
    return out


def save_calibrations(
    store: CalibrationStore, results: list[MethodResult], model_id: str, template: str = PROMPT_TEMPLATE
) -> list[CalibrationRecord]:
    """Each result stored under ``model_id`` and the template's hash; the saved records, with their ids."""
    digest = template_hash(template)
    return [
        store.save(CalibrationRecord.from_result(r.result, model_id=model_id, template_sha256=digest))
        for r in results
    ]


def find_calibration(
    database: str, model_id: str, alpha: float, method: str, template: str = PROMPT_TEMPLATE
) -> Any:
    """The newest calibration stored for this model, prompt template, alpha and method; an error naming
    the database and the command that makes one when there is none."""
    store = CalibrationStore(database)
    try:
        record = store.latest(model_id, template_hash(template), alpha, method)
    finally:
        store.close()
    if record is None:
        raise CalibrationStoreError(
            f"no {method} calibration at alpha {alpha} for {model_id} in {database}; "
            f"run `foveate calibrate --bench DIR --alpha {alpha}` first"
        )
    return record.result()


def load_calibration_file(path: Path) -> ConformalCalibration | SelectiveCalibration:
    """A calibration JSON file: a ``ConformalCalibration`` or ``SelectiveCalibration``, as pydantic writes
    them."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise FoveateError(f"cannot read calibration file {path}: {exc.strerror}") from None
    for kind in (SelectiveCalibration, ConformalCalibration):
        try:
            return kind.model_validate_json(text)
        except ValidationError:
            continue
    raise FoveateError(f"{path} is not a calibration (ConformalCalibration or SelectiveCalibration JSON)")
