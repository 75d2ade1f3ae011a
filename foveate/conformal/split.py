"""Split conformal prediction sets with the exact finite-sample threshold.

Given n calibration scores (the score of the true option of n held-out questions), the
threshold is the k-th smallest score with

    k = ceil((n + 1) * (1 - alpha)),

and the prediction set of a new question is every option whose score is at most that
threshold. If calibration and test questions are exchangeable, the set holds the true option
with probability at least ``1 - alpha``, and (without ties among scores) at most
``1 - alpha + 1 / (n + 1)``. When ``k > n`` there is no k-th score: too few calibration
questions for this alpha, and the only set with the guarantee is every option
(threshold ``+inf``).

Several popular implementations take one order statistic too many, which is safe (sets are
never smaller than needed) but wastes coverage:

- ``np.quantile(s, ceil((n+1)(1-alpha))/n, method="higher")`` (LLM-Uncertainty-Bench, the
  CAP code) lands on the (k+1)-th smallest score whenever k < n, because numpy's quantile
  position is ``q * (n - 1)``, not ``q * n``.
- MAPIE 0.x used ``(n+1)(1-alpha)/n`` with ``method="higher"``: the (k+1)-th, for instance
  whenever ``(n+1)(1-alpha)`` is a whole number (n=99, alpha=0.1). MAPIE 1.6 uses
  ``ceil((n+1)(1-alpha))/n`` with ``method="lower"``, which is exact except where the product
  rounds up in binary floating point (n=149, alpha=0.18: ``150 * 0.82 = 123.00000000000001``).
- crepes keeps an option when its conformal p-value is ``>= alpha`` rather than ``> alpha``:
  the (k+1)-th whenever ``(n+1) * alpha`` is a whole number and ``1 - confidence`` does not
  round above alpha.

``conformal_rank`` computes k with a tolerance for that binary rounding, so alpha=0.18 means
the decimal 0.18 that the user wrote.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from foveate.conformal.actions import AbstentionResult, decide, one_question
from foveate.conformal.checks import (
    RandomSource,
    check_alpha,
    check_labels,
    check_probabilities,
    check_vector,
)
from foveate.conformal.scores import ScoreConfig, as_score_config, label_scores, score_matrix
from foveate.errors import ConformalError

#: Relative distance from a whole number below which (n+1)(1-alpha) counts as that number.
#: Binary rounding of a decimal alpha is ~1e-16 relative; 1e-9 leaves room for alphas that
#: went through a little arithmetic (1 - 0.9) without ever merging two genuine values.
WHOLE_TOLERANCE = 1e-9


def conformal_rank(n: int, alpha: float) -> int:
    """k = ceil((n + 1)(1 - alpha)): which order statistic of n calibration scores is the threshold.

    May be n + 1 (too few calibration questions for this alpha): then every option is in the set.
    """
    if int(n) != n or n < 1:
        raise ConformalError(f"calibration needs at least one question, got n={n!r}")
    level = (int(n) + 1) * (1.0 - check_alpha(alpha))
    nearest = round(level)
    if abs(level - nearest) <= WHOLE_TOLERANCE * max(1.0, level):
        return int(nearest)
    return math.ceil(level)


def conformal_threshold(scores: Any, alpha: float) -> float:
    """The k-th smallest calibration score (k from ``conformal_rank``), or ``+inf`` when k > n."""
    values = check_vector(scores, "calibration scores")
    k = conformal_rank(values.shape[0], alpha)
    if k > values.shape[0]:
        return math.inf
    return float(np.partition(values, k - 1)[k - 1])


def prediction_sets(scores: Any, threshold: float) -> npt.NDArray[np.bool_]:
    """Boolean (m, K) matrix: option j is in the set of question i when its score <= threshold."""
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2:
        raise ConformalError(f"scores must be a 2-D (questions, options) matrix, got shape {matrix.shape}")
    if math.isnan(threshold):
        raise ConformalError("threshold is NaN")
    return matrix <= threshold


class ConformalCalibration(BaseModel):
    """A calibrated split-conformal predictor, small enough to store and reload as JSON.

    ``threshold`` is ``inf`` when the calibration set was too small for ``alpha`` (k > n);
    it is written as ``Infinity`` in JSON.
    """

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")
    score: ScoreConfig
    alpha: float = Field(gt=0.0, lt=1.0)
    n: int = Field(ge=1, description="calibration questions")
    k: int = Field(ge=1, description="the threshold is the k-th smallest calibration score")
    threshold: float

    @property
    def full_sets(self) -> bool:
        """True when calibration had too few questions and every set is every option."""
        return self.k > self.n

    def scores(self, probs: Any, rng: RandomSource = None) -> npt.NDArray[np.float64]:
        """Scores of every option of new questions, under the calibrated score settings."""
        return score_matrix(probs, self.score, rng)

    def prediction_sets(self, probs: Any, rng: RandomSource = None) -> npt.NDArray[np.bool_]:
        """Boolean (m, K) prediction sets for new questions; ``rng`` only for randomised scores."""
        return prediction_sets(self.scores(probs, rng), self.threshold)

    def decide(
        self,
        options: Sequence[str],
        probabilities: Sequence[float],
        *,
        on_ambiguous: Literal["abstain", "set"] = "abstain",
        rng: RandomSource = None,
    ) -> AbstentionResult:
        """One question: answer when its prediction set is a single option; otherwise abstain, or hand back
        the set (``on_ambiguous="set"``). ``rng`` only for randomised scores."""
        probs = one_question(options, probabilities)
        confidence = float(probs[int(np.argmax(probs))])
        sets = self.prediction_sets(probs[None, :], rng)
        decision = decide(sets, on_ambiguous=on_ambiguous)[0]
        kept = [options[int(i)] for i in np.flatnonzero(sets[0])]
        method = self.score.method
        if decision.action == "answer" and decision.answer is not None:
            return AbstentionResult(
                action="answer",
                answer=options[decision.answer],
                kept=kept,
                confidence=confidence,
                method=method,
                alpha=self.alpha,
                reason=f"the {method.upper()} prediction set at alpha {self.alpha} holds one option",
            )
        return AbstentionResult(
            action="set" if decision.action == "set" else "abstain",
            kept=kept,
            confidence=confidence,
            method=method,
            alpha=self.alpha,
            reason=(
                f"the {method.upper()} prediction set at alpha {self.alpha} holds "
                + (f"{len(kept)} options ({', '.join(kept)})" if kept else "no option")
                + ": not sure enough to answer"
            ),
        )


def calibrate(
    probs: Any,
    labels: Any,
    alpha: float,
    score: ScoreConfig | str = "lac",
    rng: RandomSource = None,
) -> ConformalCalibration:
    """Calibrate split conformal on held-out questions: (n, K) option probabilities and true options.

    ``score`` is a ``ScoreConfig`` or a method name ("lac", "aps", "raps" with defaults).
    """
    config = as_score_config(score)
    p = check_probabilities(probs)
    y = check_labels(labels, p.shape[0], p.shape[1])
    level = check_alpha(alpha)
    calibration_scores = label_scores(score_matrix(p, config, rng), y)
    return ConformalCalibration(
        score=config,
        alpha=level,
        n=p.shape[0],
        k=conformal_rank(p.shape[0], level),
        threshold=conformal_threshold(calibration_scores, level),
    )
