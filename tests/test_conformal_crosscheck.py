"""Our sets against MAPIE 1.x and crepes on identical probability matrices.

Where a library takes a different order statistic, the test names the case and shows that
its sets are ours computed with k + 1 (one score too many), never anything else:

- MAPIE 1.6 computes ``np.quantile(s, ceil((n+1)(1-alpha))/n, method="lower")``, exact except
  when the product rounds up in binary floating point (n=149, alpha=0.18).
- crepes keeps an option when its p-value ``(#{cal >= s} + 1)/(n+1) >= 1 - confidence``; the
  exact rule is ``>``, so it keeps one score too many when ``(n+1) * alpha`` is a whole number
  and ``1 - confidence`` does not round above alpha.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from crepes import ConformalClassifier
from crepes.extras import hinge
from mapie.classification import SplitConformalClassifier
from mapie.conformity_scores import APSConformityScore
from mapie.utils import _compute_classification_quantile
from sklearn.base import BaseEstimator, ClassifierMixin

from foveate.conformal import (
    aps_scores,
    calibrate,
    conformal_rank,
    conformal_threshold,
    label_scores,
    lac_scores,
    prediction_sets,
)


def questions(rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    logits = rng.normal(size=(n, k)) * 2.0
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = np.minimum((rng.random((n, 1)) > probs.cumsum(axis=1)).sum(axis=1), k - 1)
    return probs, labels


def sets_at_rank(calibration_scores: np.ndarray, test_scores: np.ndarray, k: int) -> np.ndarray:
    """Our sets if the threshold were the k-th smallest calibration score (inf past n)."""
    ordered = np.sort(calibration_scores)
    return test_scores <= (ordered[k - 1] if k <= len(ordered) else math.inf)


class FixedProbabilities(ClassifierMixin, BaseEstimator):
    """Stands in for the VLM: a feature is a row index into a fixed probability matrix."""

    def __init__(self, probs: np.ndarray | None = None) -> None:
        self.probs = probs

    def fit(self, X: np.ndarray, y: np.ndarray) -> FixedProbabilities:
        assert self.probs is not None
        self.classes_ = np.arange(self.probs.shape[1])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        assert self.probs is not None
        return self.probs[np.asarray(X)[:, 0].astype(int)]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def mapie_float_rank(n: int, alpha: float) -> int:
    return math.ceil((n + 1) * (1 - alpha))


# --- MAPIE --------------------------------------------------------------------------------------


def test_mapie_quantile_is_ours_except_where_its_ceiling_rounds_up() -> None:
    rng = np.random.default_rng(0)
    rounding_cases = []
    for alpha in (0.05, 0.1, 0.18, 0.2, 0.41):
        for n in range(1, 301):
            scores = rng.random(n)
            k = conformal_rank(n, alpha)
            assert k == math.ceil((n + 1) * (1 - Fraction(str(alpha))))  # ours is the decimal rank
            if mapie_float_rank(n, alpha) > n:
                with pytest.raises(ValueError, match="range"):
                    _compute_classification_quantile(scores, np.array([alpha]))
                assert k > n or mapie_float_rank(n, alpha) == k + 1
                continue
            theirs = _compute_classification_quantile(scores, np.array([alpha]))[0]
            if mapie_float_rank(n, alpha) == k:
                assert theirs == conformal_threshold(scores, alpha)
            else:
                assert mapie_float_rank(n, alpha) == k + 1
                assert theirs == np.sort(scores)[k]  # the (k+1)-th smallest
                rounding_cases.append((n, alpha))
    assert (149, 0.18) in rounding_cases and (99, 0.41) in rounding_cases
    assert not any(alpha in (0.05, 0.1, 0.2) for _, alpha in rounding_cases)


@pytest.mark.parametrize(("n", "confidence", "extra"), [(500, 0.9, 0), (99, 0.9, 0), (149, 0.82, 1)])
def test_mapie_lac_sets_end_to_end(n: int, confidence: float, extra: int) -> None:
    """SplitConformalClassifier on a prefit stand-in; n=149 at 82% is a float-rounding case."""
    rng = np.random.default_rng(n)
    m = 400
    probs, labels = questions(rng, n + m)
    features = np.arange(n + m)[:, None]
    mapie = SplitConformalClassifier(
        FixedProbabilities(probs).fit(features, labels), confidence_level=confidence, prefit=True
    )
    mapie.conformalize(features[:n], labels[:n])
    theirs = mapie.predict_set(features[n:])[1][:, :, 0]
    ours = calibrate(probs[:n], labels[:n], alpha=1 - confidence)
    calibration_scores = label_scores(lac_scores(probs[:n]), labels[:n])
    assert np.array_equal(theirs, sets_at_rank(calibration_scores, lac_scores(probs[n:]), ours.k + extra))
    if extra:
        assert not np.array_equal(theirs, ours.prediction_sets(probs[n:]))  # the case really differs
    else:
        assert np.array_equal(theirs, ours.prediction_sets(probs[n:]))


def test_mapie_randomised_aps_sets_end_to_end() -> None:
    """MAPIE draws its uniforms from RandomState(seed), once for calibration and once for test."""
    rng = np.random.default_rng(5)
    n, m, seed = 300, 400, 11
    probs, labels = questions(rng, n + m)
    features = np.arange(n + m)[:, None]
    mapie = SplitConformalClassifier(
        FixedProbabilities(probs).fit(features, labels),
        confidence_level=0.9,
        conformity_score="aps",
        prefit=True,
        random_state=seed,
    )
    mapie.conformalize(features[:n], labels[:n])
    theirs = mapie.predict_set(features[n:], conformity_score_params={"include_last_label": "randomized"})[1]
    u_calibration = np.random.RandomState(seed).uniform(size=n)
    u_test = np.random.RandomState(seed).uniform(size=(m, 1))[:, 0]
    calibration_scores = label_scores(aps_scores(probs[:n], u_calibration), labels[:n])
    threshold = conformal_threshold(calibration_scores, 0.1)
    ours = prediction_sets(aps_scores(probs[n:], u_test), threshold)
    assert np.array_equal(theirs[:, :, 0], ours)
    assert (ours.sum(axis=1) != 1).any() and (ours.sum(axis=1) == 1).any()  # not a trivial comparison


def test_mapie_deterministic_aps_sets_differ_only_where_ours_are_empty() -> None:
    """MAPIE's include_last_label=False still forces the top option into every set; ours may be empty."""
    rng = np.random.default_rng(6)
    n, m, alpha = 200, 400, 0.3
    probs, labels = questions(rng, n + m)
    calibration_scores = label_scores(aps_scores(probs[:n]), labels[:n])
    ours = prediction_sets(aps_scores(probs[n:]), conformal_threshold(calibration_scores, alpha))
    score = APSConformityScore()
    score.quantiles_ = _compute_classification_quantile(calibration_scores, np.array([alpha]))
    theirs = score.get_prediction_sets(
        probs[n:, :, None], calibration_scores, np.array([alpha]), cv="prefit", include_last_label=False
    )[:, :, 0]
    empty = ~ours.any(axis=1)
    assert empty.any() and not empty.all()
    assert np.array_equal(theirs[~empty], ours[~empty])
    assert np.array_equal(theirs[empty], np.eye(probs.shape[1], dtype=bool)[probs[n:][empty].argmax(axis=1)])


# --- crepes -------------------------------------------------------------------------------------


def crepes_keeps_the_tie(n: int, confidence: float) -> bool:
    """Whether crepes' p >= 1 - confidence admits p = alpha exactly, in floating point."""
    whole = (n + 1) * (1 - Fraction(str(confidence)))
    return whole.denominator == 1 and float(whole) / (n + 1) >= 1 - confidence


@pytest.mark.parametrize("score", ["lac", "aps"])
def test_crepes_sets_are_ours_or_one_order_statistic_more(score: str) -> None:
    rng = np.random.default_rng(7)
    m = 60
    seen_tie = seen_plain = False
    for confidence in (0.8, 0.9, 0.95):
        alpha = float(Fraction(1) - Fraction(str(confidence)))
        for n in (19, 20, 39, 59, 99, 100, 119):
            probs, labels = questions(rng, n + m)
            matrix = lac_scores(probs) if score == "lac" else aps_scores(probs)
            calibration_scores = label_scores(matrix[:n], labels[:n])
            if score == "lac":
                assert np.allclose(hinge(probs[:n], np.arange(4), labels[:n]), calibration_scores)
            crepes = ConformalClassifier().fit(calibration_scores)
            theirs = crepes.predict_set(matrix[n:], confidence=confidence, smoothing=False).astype(bool)
            k = conformal_rank(n, alpha)
            if crepes_keeps_the_tie(n, confidence):
                assert np.array_equal(theirs, sets_at_rank(calibration_scores, matrix[n:], k + 1))
                seen_tie = True
            else:
                assert np.array_equal(theirs, sets_at_rank(calibration_scores, matrix[n:], k))
                assert np.array_equal(
                    theirs, prediction_sets(matrix[n:], conformal_threshold(calibration_scores, alpha))
                )
                seen_plain = True
    assert seen_tie and seen_plain


def test_crepes_tie_cases_are_the_whole_number_ones() -> None:
    """Spell out which (n, confidence) pairs crepes rounds the other way."""
    assert crepes_keeps_the_tie(99, 0.9)  # 100 * 0.1 = 10; 1 - 0.9 = 0.09999999999999998 <= 0.1
    assert crepes_keeps_the_tie(19, 0.8)
    assert not crepes_keeps_the_tie(19, 0.95)  # 1 - 0.95 = 0.050000000000000044 > 1/20: exact again
    assert not crepes_keeps_the_tie(100, 0.9)  # 10.1 is not whole
