"""The calibration procedure: labelled outcomes -> an ``AnswerGate`` -> a stored record -> the gate again.

``calibrate_methods`` runs every requested method on one (n, K) matrix of option probabilities and the
true options: split conformal sets (LAC, APS) and answer-or-abstain thresholds on the top option's
probability (conformal risk control, Learn then Test), each with its coverage / accuracy *on the
calibration questions themselves* (an in-sample check, not an estimate for new questions).
``calibrate_gate`` makes the gate of one workflow's answers (``LabelledScore``: multiple choice and free
text, optionally per category); ``save_gate`` stores it under its key, ``find_gate`` finds the one made for
a key (refusing, by name, one made for anything else) and ``load_calibration_file`` reads one written as
JSON. ``foveate calibrate``, ``foveate run --alpha`` and ``Agent`` use these, so a record written by one is
the record the others read.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from pydantic import ValidationError

from foveate.conformal.answer_gate import AnswerGate, GateKey, OptionsCalibration
from foveate.conformal.records import CalibrationRecord, CalibrationStore
from foveate.conformal.risk_control import SelectiveCalibration, crc_threshold, ltt_threshold
from foveate.conformal.split import ConformalCalibration, calibrate
from foveate.databases import as_url, sqlite_file
from foveate.errors import CalibrationMismatchError, CalibrationStoreError, ConformalError, FoveateError
from foveate.files import regular_file

__all__ = [
    "METHODS",
    "LabelledScore",
    "MethodResult",
    "calibrate_gate",
    "calibrate_methods",
    "check_gate",
    "find_gate",
    "load_calibration_file",
    "save_gate",
]

log = logging.getLogger(__name__)

METHODS = ("lac", "aps", "crc", "ltt")
"""The methods a gate can decide multiple-choice answers by (``foveate calibrate --method``)."""


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


@dataclass(frozen=True)
class LabelledScore:
    """One labelled calibration question as the workflow answered it: a multiple-choice answer
    (``probabilities`` and the true option's index ``label``) or a free-text one (its sequence
    ``confidence`` and whether it matched the truth, ``correct``)."""

    category: str | None = None
    probabilities: tuple[float, ...] = ()
    label: int | None = None
    confidence: float | None = None
    correct: bool | None = None

    @property
    def is_options(self) -> bool:
        return self.label is not None


def _options_calibration(
    rows: list[LabelledScore], alpha: float, method: str, delta: float
) -> OptionsCalibration | None:
    if not rows:
        return None
    width = max(len(r.probabilities) for r in rows)  # fewer options: the missing ones have p = 0
    probs = np.array([list(r.probabilities) + [0.0] * (width - len(r.probabilities)) for r in rows])
    labels = np.array([r.label for r in rows], dtype=np.int64)
    return calibrate_methods(probs, labels, alpha, (method,), delta=delta)[0].result


def _free_text_calibration(rows: list[LabelledScore], alpha: float) -> SelectiveCalibration | None:
    # answers without a confidence are left out: the gate abstains on them, so they add no risk
    scored = [r for r in rows if r.confidence is not None and math.isfinite(r.confidence)]
    if not scored:
        return None
    return crc_threshold([r.confidence for r in scored], [bool(r.correct) for r in scored], alpha)


def calibrate_gate(
    scores: list[LabelledScore],
    alpha: float,
    method: str = "crc",
    *,
    key: GateKey | None = None,
    by_category: bool = False,
    delta: float = 0.1,
    source: str = "",
) -> AnswerGate:
    """An ``AnswerGate`` from labelled outcomes: multiple-choice answers calibrated by ``method``, free-text
    ones by conformal risk control on their confidence; with ``by_category``, one more calibration per
    category (Mondrian) for each form."""
    if method not in METHODS:
        raise ConformalError(f"unknown calibration method {method!r}: use {', '.join(METHODS)}")
    if not scores:
        raise ConformalError("no labelled questions to calibrate on")
    options = [s for s in scores if s.is_options]
    free = [s for s in scores if not s.is_options]
    counts = {"options": len(options), "free_text": len(free)}
    options_by: dict[str, OptionsCalibration] = {}
    free_by: dict[str, SelectiveCalibration] = {}
    if by_category:
        for name in sorted({s.category for s in scores if s.category is not None}):
            mine = [s for s in options if s.category == name]
            theirs = [s for s in free if s.category == name]
            if mine:
                options_by[name] = cast(OptionsCalibration, _options_calibration(mine, alpha, method, delta))
                counts[f"options:{name}"] = len(mine)
            ft = _free_text_calibration(theirs, alpha)
            if ft is not None:
                free_by[name] = ft
                counts[f"free_text:{name}"] = len(theirs)
    return AnswerGate(
        alpha=alpha,
        method=cast(Any, method),
        key=key,
        options=_options_calibration(options, alpha, method, delta),
        free_text=_free_text_calibration(free, alpha),
        options_by_category=options_by,
        free_text_by_category=free_by,
        calibrated_on=counts,
        source=source,
        options_scores=[(max(s.probabilities), int(np.argmax(s.probabilities)) == s.label) for s in options],
    )


def save_gate(store: CalibrationStore, gate: AnswerGate) -> CalibrationRecord:
    """Store a gate under its key (``GateKey.sha256``); the saved record, with its id."""
    if gate.key is None:
        raise ConformalError("a gate without a key cannot be stored: it would match nothing")
    record = CalibrationRecord.from_result(
        gate, model_id=gate.key.model_id, template_sha256=gate.key.sha256()
    )
    return store.save(record)


def check_gate(gate: AnswerGate, key: GateKey, *, origin: str, allow_mismatch: bool = False) -> AnswerGate:
    """``gate`` when it was made for ``key``; otherwise an error naming every difference and ``origin``
    (where the gate came from), or, with ``allow_mismatch``, the gate with a warning logged."""
    if gate.key is None or gate.key.matches(key):
        return gate
    differences = "; ".join(key.differences(gate.key))
    if allow_mismatch:
        log.warning(
            "using the calibration from %s although it was made for something else: %s", origin, differences
        )
        return gate
    raise CalibrationMismatchError(
        f"the calibration from {origin} was made for something else ({differences}); its guarantee does not "
        f"carry over: run `foveate calibrate` for this model, workflow and budget, or pass the override "
        f"(--allow-calibration-mismatch, allow_mismatch=True) to use it anyway"
    )


def find_gate(
    database: str, key: GateKey, alpha: float, method: str, *, allow_mismatch: bool = False
) -> AnswerGate:
    """The newest gate stored for exactly ``key`` at ``alpha`` and ``method``. Without one: an error naming
    how the newest gate at that alpha and method differs (or that there is none, and the command that makes
    one); with ``allow_mismatch``, that nearest gate, with a warning."""
    path = sqlite_file(as_url(database))
    record, nearest = None, []
    if path is None or (path.exists() and path.stat().st_size > 0):  # opened read-only: nothing created
        store = CalibrationStore(database, read_only=True)
        try:
            found = store.latest_gates(alpha, method, key_sha256=key.sha256(), limit=1)
            record = found[0] if found else None
            nearest = store.latest_gates(alpha, method) if record is None else []
        finally:
            store.close()
    if record is not None:
        return cast(AnswerGate, record.result())
    same_model = [r for r in nearest if r.model_id == key.model_id]
    if not nearest:
        raise CalibrationStoreError(
            f"no {method} calibration at alpha {alpha} in {database}; run "
            f"`foveate calibrate --workflow {key.workflow} --alpha {alpha} --method {method}` first"
        )
    closest = cast(AnswerGate, (same_model or nearest)[0].result())
    return check_gate(
        closest,
        key,
        origin=f"{database} (record {(same_model or nearest)[0].id})",
        allow_mismatch=allow_mismatch,
    )


def load_calibration_file(path: Path) -> ConformalCalibration | SelectiveCalibration | AnswerGate:
    """A calibration JSON file: an ``AnswerGate`` (``AnswerGate.to_json``), a ``ConformalCalibration`` or a
    ``SelectiveCalibration``, as pydantic writes them."""
    path = regular_file(path, "calibration file")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise FoveateError(f"cannot read calibration file {path}: {exc}") from None
    try:
        return AnswerGate.from_json(text)
    except (ValidationError, ValueError):
        pass
    for kind in (SelectiveCalibration, ConformalCalibration):
        try:
            return kind.model_validate_json(text)
        except ValidationError:
            continue
    raise FoveateError(f"{path} is not a calibration (ConformalCalibration or SelectiveCalibration JSON)")
