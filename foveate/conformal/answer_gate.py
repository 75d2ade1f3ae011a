"""The gate on every answer: a calibration per answer form (options, free text) and, optionally, category.

A conformal threshold holds only for the scores it was calibrated on. ``AnswerGate`` therefore carries
what it was made for (``GateKey``: the model and a fingerprint of its weights, the workflow and a hash of
its spec, the zoom strategies, the token budget) and a calibration for each kind of answer the workflow
gives:

- ``options``: multiple-choice answers, decided from the option probabilities (split conformal LAC / APS
  sets, or a CRC / LTT threshold on the top probability);
- ``free_text``: generated answers, decided from their length-normalised sequence probability
  (``VLMResult.confidence``) by a conformal risk-control threshold, so that P(answered and wrong) <= alpha
  where "wrong" is a normalised-match miss (``foveate.evaluation.labelled.matches``);
- ``options_by_category`` / ``free_text_by_category``: Mondrian calibration, one threshold per category
  (coverage then holds within each category, not only on average); a question with no category, or one
  the calibration did not see, is decided by the marginal calibration, and its reason says so.

``decide`` keeps the ``Calibration`` protocol of ``foveate.conformal.gate``, so the ``abstain`` node and
``abstain_or_answer`` take a gate as they take a single calibration.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from foveate.conformal.actions import AbstentionResult
from foveate.conformal.adaptive import AdaptiveThreshold
from foveate.conformal.drift import CoverageMonitor
from foveate.conformal.risk_control import SelectiveCalibration
from foveate.conformal.split import ConformalCalibration
from foveate.errors import ConformalError

__all__ = ["AnswerGate", "GateKey", "OptionsCalibration"]

OptionsCalibration = ConformalCalibration | SelectiveCalibration


class GateKey(BaseModel):
    """What a gate was calibrated for. Scores from anything else (another model, workflow, search or
    budget) are other scores, and the gate's guarantee says nothing about them."""

    model_config = ConfigDict(frozen=True)
    model_id: str
    """The model's id: its folder, hub id or served name. Where the fingerprint hashes the weights
    (``sha256:...``) the id is a label only: the same weights in another folder are the same model."""
    model_fingerprint: str
    """A hash of its weights (local models) or the server and served name (a server backend)."""
    workflow: str
    """The workflow's name."""
    workflow_sha256: str
    """SHA-256 of the workflow's spec as canonical JSON: a changed node parameter is a different workflow."""
    strategy: str
    """The zoom strategies the workflow's zoom nodes run (``none`` without one); part of the spec's hash
    too, named here so a refusal can say which."""
    budget: str
    """The per-question token budget (``TokenBudget``) as canonical JSON."""

    def identity(self) -> dict[str, str]:
        """The fields that say which answers these are: all of them, less ``model_id`` when the fingerprint
        hashes the weights (a folder moved or copied elsewhere holds the same model)."""
        fields = self.model_dump()
        if self.model_fingerprint.startswith("sha256:"):
            del fields["model_id"]
        return fields

    def matches(self, other: GateKey) -> bool:
        """Whether ``other`` names the same answers (``identity``)."""
        return self.identity() == other.identity()

    def sha256(self) -> str:
        """SHA-256 of the identity as canonical JSON: what a stored record is found by."""
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def differences(self, other: GateKey) -> list[str]:
        """What differs from ``other`` (the calibration's key), one phrase per field, for a refusal."""
        out: list[str] = []
        mine_fields, their_fields = self.identity(), other.identity()
        for name in GateKey.model_fields:
            if name not in mine_fields and name not in their_fields:
                continue
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                out.append(_difference(name, theirs, mine))
        return out


def _difference(name: str, theirs: str, mine: str) -> str:
    """One field's difference; for a JSON object (the budget) the keys that differ, since two long
    objects cut to fit looked alike ("max_t…er_image" in both)."""
    try:
        old, new = json.loads(theirs), json.loads(mine)
    except ValueError:
        old = new = None
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k, _ABSENT) != new.get(k, _ABSENT))
        said = [
            f"{k} calibrated for {old.get(k, _ABSENT)!r}, asked with {new.get(k, _ABSENT)!r}" for k in keys
        ]
        if said:  # else the texts differ only in form (1 and 1.0): show them whole
            return f"{name}: " + ", ".join(said)
    return f"{name}: calibrated for {_short(theirs)}, asked with {_short(mine)}"


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()


def _short(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:28] + "…" + value[-28:])


class AnswerGate(BaseModel):
    """Calibrations for every answer form of one workflow, at one alpha, by one method."""

    model_config = ConfigDict(frozen=True)
    alpha: float = Field(gt=0.0, lt=1.0)
    """The risk level: P(answered and wrong) <= alpha (CRC), miscoverage <= alpha (LAC / APS), or
    P(wrong | answered) <= alpha with probability 1 - delta (LTT)."""
    method: Literal["lac", "aps", "crc", "ltt"]
    """How multiple-choice answers are decided; free-text answers always use CRC (there is no set)."""
    key: GateKey | None = None
    """What it was calibrated for (None: a gate built by hand, checked against nothing)."""
    options: OptionsCalibration | None = None
    """Multiple-choice answers (None: none were in the calibration data; such answers then abstain)."""
    free_text: SelectiveCalibration | None = None
    """Generated answers, on their sequence confidence (None: none in the calibration data)."""
    options_by_category: dict[str, OptionsCalibration] = Field(default_factory=dict)
    """Mondrian: one calibration per question category (empty: marginal only)."""
    free_text_by_category: dict[str, SelectiveCalibration] = Field(default_factory=dict)
    """Mondrian for free-text answers."""
    calibrated_on: dict[str, int] = Field(default_factory=dict)
    """Labelled questions behind each calibration: ``options``, ``free_text``, ``options:CATEGORY``..."""
    source: str = ""
    """Where the labelled questions came from (a file, or a synthetic benchmark and its seed)."""
    options_scores: list[tuple[float, bool]] = Field(default_factory=list)
    """Each multiple-choice calibration answer's top probability and whether it was right: what adaptive
    conformal inference re-reads the threshold from under drift (``adaptive_monitor``)."""

    # ------------------------------------------------------------------ deciding
    def decide(
        self,
        options: Sequence[str],
        probabilities: Sequence[float],
        *,
        on_ambiguous: Literal["abstain", "set"] = "abstain",
        rng: Any = None,
        category: str | None = None,
    ) -> AbstentionResult:
        """A multiple-choice answer: the category's calibration when there is one, else the marginal."""
        calibration, note = self._pick(self.options, self.options_by_category, category)
        if calibration is None:
            top = max(probabilities) if probabilities else 0.0
            return AbstentionResult(
                action="abstain",
                confidence=float(top),
                method=self.method,
                alpha=self.alpha,
                reason="the gate has no calibration for multiple-choice answers; calibrate on questions "
                "with options",
            )
        result = calibration.decide(options, probabilities, on_ambiguous=on_ambiguous, rng=rng)
        return result.model_copy(update={"reason": result.reason + note}) if note else result

    def decide_free_text(
        self, answer: str, confidence: float | None, *, category: str | None = None
    ) -> AbstentionResult:
        """A generated answer: answer when its sequence confidence clears the calibrated threshold."""
        calibration, note = self._pick(self.free_text, self.free_text_by_category, category)
        if calibration is None or confidence is None or not math.isfinite(confidence):
            why = (
                "the gate has no calibration for free-text answers; calibrate on questions without options"
                if calibration is None
                else "the model gave no confidence for its free-text answer (no token log-probabilities)"
            )
            return AbstentionResult(
                action="abstain", confidence=confidence or 0.0, method="crc", alpha=self.alpha, reason=why
            )
        answered = confidence > calibration.threshold
        reason = (
            f"free-text confidence {confidence:.3f} {'>' if answered else '<='} calibrated threshold "
            f"{calibration.threshold:.3f} (P(answered and wrong) <= {calibration.alpha:g}){note}"
        )
        return AbstentionResult(
            action="answer" if answered else "abstain",
            answer=answer if answered else None,
            confidence=confidence,
            method=calibration.method,
            alpha=calibration.alpha,
            reason=reason,
        )

    def _pick(self, marginal: Any, by_category: dict[str, Any], category: str | None) -> tuple[Any, str]:
        if not by_category:
            return marginal, ""
        if category is not None and category in by_category:
            return by_category[category], f"; calibrated for category {category!r}"
        why = "no category given" if category is None else f"category {category!r} was not calibrated"
        return marginal, f"; marginal calibration ({why})"

    def describe(self) -> str:
        """One line: each calibration's threshold and the questions behind it, and what it was made for."""

        def one(name: str, cal: OptionsCalibration | None) -> str:
            n = self.calibrated_on.get(name, 0)
            return f"{name} {'-' if cal is None else f'{cal.threshold:.4g}'} (n={n})"

        parts = [one("options", self.options), one("free_text", self.free_text)]
        parts += [one(f"options:{c}", cal) for c, cal in self.options_by_category.items()]
        parts += [one(f"free_text:{c}", cal) for c, cal in self.free_text_by_category.items()]
        made = f"; made for workflow {self.key.workflow!r} on {self.key.model_id}" if self.key else ""
        return f"{self.method} thresholds: " + ", ".join(parts) + made

    def with_options_threshold(self, threshold: float) -> AnswerGate:
        """The gate with multiple-choice answers decided at ``threshold`` (an adaptive threshold's current
        value); only for a threshold method (CRC / LTT)."""
        if not isinstance(self.options, SelectiveCalibration):
            raise ConformalError(f"a {self.method} gate decides by sets: its threshold cannot move")
        return self.model_copy(update={"options": self.options.model_copy(update={"threshold": threshold})})

    def adaptive_monitor(self, *, gamma: float = 0.02, window: int = 100) -> CoverageMonitor:
        """A coverage monitor over the last ``window`` feedbacks that switches on adaptive conformal inference
        (``AdaptiveThreshold``, step ``gamma``) on this gate's multiple-choice calibration answers when it
        detects drift; a CRC gate with its calibration answers (``options_scores``) only."""
        if self.method != "crc" or not self.options_scores:
            raise ConformalError(
                "an adaptive threshold needs a CRC gate that kept its calibration answers "
                f"(this one: {self.method}, {len(self.options_scores)} answers kept)"
            )
        confidence = [c for c, _ in self.options_scores]
        correct = [ok for _, ok in self.options_scores]
        adapt = AdaptiveThreshold(confidence, correct, self.alpha, gamma=gamma)
        return CoverageMonitor(self.alpha, window=window, adapt=adapt)

    # ------------------------------------------------------------------ storing
    def to_json(self) -> str:
        """JSON with infinite thresholds written ``Infinity`` / ``-Infinity`` (pydantic's JSON mode would
        write null unless every nested model opts in)."""
        return json.dumps(self.model_dump(mode="python"), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AnswerGate:
        return cls.model_validate(json.loads(text))
