"""Choose a confidence threshold for selective answering, with a guarantee on wrong answers.

The system answers a question when its confidence is strictly above a threshold ``lam`` and
abstains otherwise. Two guarantees, two procedures, both calibrated on n held-out questions
with known correctness:

- **Conformal risk control** (Angelopoulos et al. 2022) bounds the rate of *answered and
  wrong* questions, in expectation over calibration and test:
  ``P(answered and wrong) <= alpha``. The loss ``1[confidence > lam and wrong]`` is bounded
  by 1 and never increases with ``lam`` (fewer questions answered), so
  ``lam = inf{l : n/(n+1) * R_n(l) + 1/(n+1) <= alpha}`` has the guarantee; the infimum is
  reached at an observed confidence because the loss is right-continuous in ``lam``.
- **Learn then Test** (Angelopoulos, Bates et al. 2021) bounds the error rate *among
  answered* questions, ``P(wrong | answered) <= alpha``, with probability ``1 - delta`` over
  the calibration draw. Each candidate threshold gets a Hoeffding-Bentkus p-value for "its
  error among answered exceeds alpha", computed from the answered calibration questions; the
  candidates are tested in a fixed order from strict to lenient and the procedure stops at
  the first it cannot reject, which controls the family-wise error at ``delta``.

Learn then Test cannot certify a threshold that answers almost nothing (a handful of
questions never gives a small p-value), and one such failure at the strict end would stop
the sequence at once. As in Angelopoulos and Bates' gentle introduction (selective
classification, where they keep thresholds answering at least 30), candidates that answer
fewer than ``min_answered`` calibration questions are left out before testing; that choice
looks only at confidences, never at correctness. The default size is the smallest number of
answered questions on which an error rate of ``alpha / 2`` would be certified at ``delta``
(94 for alpha = delta = 0.1): smaller samples could pass only if nearly error-free, and
mostly end the sequence early instead.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from foveate.conformal.actions import AbstentionResult, one_question
from foveate.conformal.binomial import hoeffding_bentkus_pvalue
from foveate.conformal.checks import check_alpha, check_flags, check_vector
from foveate.errors import ConformalError

#: Default Learn-then-Test candidates for confidences in [0, 1]: fixed before seeing data.
DEFAULT_LTT_GRID = np.linspace(1.0, 0.0, 1001)


class SelectiveCalibration(BaseModel):
    """A calibrated answer-or-abstain threshold: answer when confidence > ``threshold``.

    ``threshold`` is ``-inf`` to answer everything and ``inf`` to answer nothing (no
    threshold met the guarantee); JSON writes them as ``-Infinity`` and ``Infinity``.
    """

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")
    method: Literal["crc", "ltt"]
    alpha: float = Field(gt=0.0, lt=1.0)
    delta: float | None = Field(default=None, gt=0.0, lt=1.0, description="LTT only")
    n: int = Field(ge=1, description="calibration questions")
    threshold: float
    answered: int = Field(ge=0, description="calibration questions answered at the threshold")
    wrong: int = Field(ge=0, description="answered calibration questions that were wrong")

    @property
    def guarantee(self) -> str:
        if self.method == "crc":
            return f"P(answered and wrong) <= {self.alpha:g} in expectation"
        return f"P(wrong | answered) <= {self.alpha:g} with probability >= {1 - (self.delta or 0):g}"

    def answer_mask(self, confidence: Any) -> npt.NDArray[np.bool_]:
        """True where a question with this confidence is answered."""
        return check_vector(confidence, "confidence") > self.threshold

    def decide(
        self,
        options: Sequence[str],
        probabilities: Sequence[float],
        *,
        on_ambiguous: Literal["abstain", "set"] = "abstain",
        rng: Any = None,
    ) -> AbstentionResult:
        """One question: answer when the top option's probability exceeds the threshold (``on_ambiguous``
        and ``rng`` do not apply: there is no set)."""
        probs = one_question(options, probabilities)
        top = int(np.argmax(probs))
        confidence = float(probs[top])
        answered = confidence > self.threshold
        return AbstentionResult(
            action="answer" if answered else "abstain",
            answer=options[top] if answered else None,
            confidence=confidence,
            method=self.method,
            alpha=self.alpha,
            reason=(
                f"top probability {confidence:.3f} {'>' if answered else '<='} calibrated threshold "
                f"{self.threshold:.3f}"
            ),
        )


def crc_threshold(confidence: Any, correct: Any, alpha: float) -> SelectiveCalibration:
    """Conformal risk control: the most lenient threshold with ``P(answered and wrong) <= alpha``.

    ``confidence`` is any score where larger means "more likely right" (max probability, a
    learned policy's output); ``correct`` says whether the answer the system would give is right.
    """
    c = check_vector(confidence, "confidence")
    ok = check_flags(correct, "correct", c.shape[0])
    level = check_alpha(alpha)
    n = c.shape[0]
    values, wrong_above = _wrong_above(c, ~ok)
    # n/(n+1) * W/n + 1/(n+1) <= alpha  <=>  W + 1 <= alpha (n + 1); tolerate binary rounding
    budget = level * (n + 1) * (1 + 1e-12)
    feasible = wrong_above + 1 <= budget
    if not feasible.any():
        return SelectiveCalibration(method="crc", alpha=level, n=n, threshold=math.inf, answered=0, wrong=0)
    first = int(np.argmax(feasible))  # wrong_above never increases along values, so this is the infimum
    threshold = float(values[first])
    return _summary("crc", level, None, c, ok, threshold)


def ltt_threshold(
    confidence: Any,
    correct: Any,
    alpha: float,
    delta: float = 0.1,
    *,
    candidates: Any = None,
    min_answered: int | None = None,
) -> SelectiveCalibration:
    """Learn then Test: the most lenient threshold whose error among answered is <= alpha w.p. 1 - delta.

    ``candidates`` are tested from strict (high) to lenient (low) whatever order they are
    given in; the default is 0.000, 0.001, ..., 1.000 and needs confidences in [0, 1].
    ``min_answered`` defaults to ``certifiable_size(alpha, delta)``.
    """
    c = check_vector(confidence, "confidence")
    ok = check_flags(correct, "correct", c.shape[0])
    level = check_alpha(alpha)
    risk_delta = check_alpha(delta, "delta")
    if min_answered is None:
        min_answered = certifiable_size(level, risk_delta)
    if min_answered < 1:
        raise ConformalError(f"min_answered must be at least 1, got {min_answered}")
    if candidates is None:
        if c.min() < 0.0 or c.max() > 1.0:
            raise ConformalError("confidences outside [0, 1] need explicit LTT candidate thresholds")
        grid = DEFAULT_LTT_GRID
    else:
        grid = np.sort(np.unique(check_vector(candidates, "candidates")))[::-1]
    sorted_c = np.sort(c)
    wrong_sorted = np.cumsum((~ok)[np.argsort(c, kind="stable")][::-1])[::-1]  # wrong with c >= sorted_c[i]
    chosen = math.inf
    for lam in grid:
        first_answered = int(np.searchsorted(sorted_c, lam, side="right"))
        answered = c.shape[0] - first_answered
        if answered < min_answered:
            continue
        wrong = int(wrong_sorted[first_answered])
        if hoeffding_bentkus_pvalue(wrong / answered, answered, level) > risk_delta:
            break
        chosen = float(lam)
    return _summary("ltt", level, risk_delta, c, ok, chosen)


@functools.lru_cache(maxsize=64)
def certifiable_size(alpha: float, delta: float) -> int:
    """Fewest answered questions on which an error rate of alpha / 2 passes the HB test at delta."""
    size = 1
    while hoeffding_bentkus_pvalue(math.floor(size * alpha / 2) / size, size, alpha) > delta:
        size += 1
    return size


def _wrong_above(c: npt.NDArray[np.float64], wrong: npt.NDArray[np.bool_]) -> tuple[np.ndarray, np.ndarray]:
    """Candidate thresholds (-inf, then each distinct confidence, ascending) and wrong answers above each."""
    values, inverse = np.unique(c, return_inverse=True)
    wrong_at = np.bincount(inverse, weights=wrong.astype(np.float64), minlength=values.shape[0])
    wrong_above = wrong.sum() - np.cumsum(wrong_at)  # strictly above each distinct value
    return (
        np.concatenate(([-math.inf], values)),
        np.concatenate(([float(wrong.sum())], wrong_above)),
    )


def _summary(
    method: Literal["crc", "ltt"],
    alpha: float,
    delta: float | None,
    c: npt.NDArray[np.float64],
    ok: npt.NDArray[np.bool_],
    threshold: float,
) -> SelectiveCalibration:
    answered = c > threshold
    return SelectiveCalibration(
        method=method,
        alpha=alpha,
        delta=delta,
        n=c.shape[0],
        threshold=threshold,
        answered=int(answered.sum()),
        wrong=int((answered & ~ok).sum()),
    )
