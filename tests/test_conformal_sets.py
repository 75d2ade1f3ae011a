"""Split-conformal scores, thresholds and sets: hand-checked values, coverage, and properties."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from foveate.conformal import (
    ConformalCalibration,
    ScoreConfig,
    aps_scores,
    calibrate,
    conformal_rank,
    conformal_threshold,
    decide,
    label_scores,
    lac_scores,
    prediction_sets,
    raps_scores,
    score_matrix,
    singleton_answers,
)
from foveate.errors import ConformalError


def questions(
    rng: np.random.Generator, n: int, k: int = 4, sharpness: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Option probabilities of a calibrated model, and true options drawn from them."""
    logits = rng.normal(size=(n, k)) * sharpness
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    labels = (rng.random((n, 1)) > probs.cumsum(axis=1)).sum(axis=1)
    return probs, np.minimum(labels, k - 1)


# --- scores -------------------------------------------------------------------------------------

P = np.array([[0.5, 0.2, 0.3], [0.25, 0.25, 0.5]])


def test_lac_is_one_minus_probability() -> None:
    assert np.allclose(lac_scores(P), [[0.5, 0.8, 0.7], [0.75, 0.75, 0.5]])


def test_aps_counts_every_option_at_least_as_likely_ties_included() -> None:
    # row 2: the two 0.25 options tie, so each counts the other: 0.5 + 0.25 + 0.25 = 1.0
    assert np.allclose(aps_scores(P), [[0.5, 1.0, 0.8], [1.0, 1.0, 0.5]])


def test_randomised_aps_subtracts_u_times_own_probability() -> None:
    u = np.array([0.5, 1.0])
    assert np.allclose(aps_scores(P, u), [[0.25, 0.9, 0.65], [0.75, 0.75, 0.0]])


def test_raps_penalises_rank_beyond_k_reg() -> None:
    # ranks (ties share the lower rank): row 1 -> 1, 3, 2; row 2 -> 3, 3, 1
    scores = raps_scores(P, lam=0.1, k_reg=1)
    assert np.allclose(scores, [[0.5, 1.2, 0.9], [1.2, 1.2, 0.5]])
    assert np.allclose(raps_scores(P, lam=0.0, k_reg=0), aps_scores(P))


def test_tied_options_never_split_a_set() -> None:
    """Equal probabilities get equal scores, whatever order the options were listed in."""
    probs = np.array([[0.3, 0.3, 0.3, 0.1]])
    for method in ("aps", "raps"):
        config = ScoreConfig(method=method) if method == "aps" else ScoreConfig(method="raps", lam=0.2)
        row = score_matrix(probs, config)[0]
        assert row[0] == row[1] == row[2] < row[3]


def test_score_matrix_draws_reproducible_uniforms() -> None:
    config = ScoreConfig(method="aps", randomized=True)
    rng_probs, _ = questions(np.random.default_rng(0), 50)
    a = score_matrix(rng_probs, config, rng=7)
    b = score_matrix(rng_probs, config, rng=np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert np.all(a <= aps_scores(rng_probs) + 1e-12) and not np.allclose(a, aps_scores(rng_probs))


def test_label_scores_pick_the_true_option() -> None:
    assert np.allclose(label_scores(lac_scores(P), [2, 0]), [0.7, 0.75])


@pytest.mark.parametrize(
    ("probs", "match"),
    [
        (np.array([0.5, 0.5]), "2-D"),
        (np.zeros((0, 3)), "empty"),
        (np.array([[1.0]]), "at least 2 options"),
        (np.array([[0.5, 0.4]]), "row 0 sums to 0.9"),
        (np.array([[1.2, -0.2]]), "negative"),
        (np.array([[np.nan, 1.0]]), "non-finite"),
    ],
)
def test_bad_probabilities_are_refused_by_name(probs: np.ndarray, match: str) -> None:
    with pytest.raises(ConformalError, match=match):
        lac_scores(probs)


def test_bad_labels_alpha_and_settings_are_refused() -> None:
    with pytest.raises(ConformalError, match=r"option index 3, outside \[0, 3\)"):
        calibrate(P, [0, 3], alpha=0.1)
    with pytest.raises(ConformalError, match="shape"):
        calibrate(P, [0], alpha=0.1)
    for alpha in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ConformalError, match="alpha"):
            calibrate(P, [0, 1], alpha=alpha)
    with pytest.raises(ConformalError, match="calibration scores is empty"):
        conformal_threshold([], 0.1)
    with pytest.raises(ConformalError, match="unknown score 'thr'"):
        calibrate(P, [0, 1], alpha=0.1, score="thr")
    with pytest.raises(ValueError, match="nothing to randomise"):
        ScoreConfig(method="lac", randomized=True)
    with pytest.raises(ValueError, match="RAPS settings"):
        ScoreConfig(method="aps", lam=0.1)
    assert issubclass(ConformalError, ValueError)


# --- the exact order statistic ------------------------------------------------------------------


def test_rank_is_ceil_of_n_plus_one_times_one_minus_alpha() -> None:
    assert conformal_rank(99, 0.1) == 90  # (n+1)(1-alpha) = 90 exactly: the 90th, not the 91st
    assert conformal_rank(100, 0.1) == 91  # 90.9 -> 91
    assert conformal_rank(149, 0.18) == 123  # binary 150 * 0.82 = 123.00000000000001
    assert conformal_rank(149, 1 - 0.82) == 123  # alpha arrived as 0.18000000000000005
    assert conformal_rank(9, 0.1) == 9
    assert conformal_rank(8, 0.1) == 9  # > n: no order statistic is high enough


def test_threshold_is_the_kth_smallest_score() -> None:
    scores = np.arange(1.0, 100.0)[::-1]  # 99 scores, 1..99, shuffled order does not matter
    assert conformal_threshold(scores, 0.1) == 90.0


def test_too_few_calibration_questions_give_every_option() -> None:
    probs, labels = questions(np.random.default_rng(1), 8)
    calibration = calibrate(probs, labels, alpha=0.1)
    assert calibration.k == 9 and calibration.full_sets and calibration.threshold == math.inf
    assert calibration.prediction_sets(questions(np.random.default_rng(2), 30)[0]).all()


def test_calibration_round_trips_through_json_including_infinity() -> None:
    probs, labels = questions(np.random.default_rng(3), 8)
    for config in (ScoreConfig(method="raps", lam=0.05, k_reg=1, randomized=True), ScoreConfig()):
        calibration = calibrate(probs, labels, alpha=0.1, score=config, rng=0)
        text = calibration.model_dump_json()
        assert json.loads(text)["threshold"] == math.inf
        assert ConformalCalibration.model_validate_json(text) == calibration
    calibration = calibrate(*questions(np.random.default_rng(4), 200), alpha=0.1, score="aps")
    again = ConformalCalibration.model_validate_json(calibration.model_dump_json())
    test = questions(np.random.default_rng(5), 40)[0]
    assert np.array_equal(again.prediction_sets(test), calibration.prediction_sets(test))


# --- coverage -----------------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.2])
@pytest.mark.parametrize("n", [19, 100])
@pytest.mark.parametrize("config", [ScoreConfig(method="lac"), ScoreConfig(method="aps", randomized=True)])
def test_mean_coverage_is_exactly_k_over_n_plus_one(alpha: float, n: int, config: ScoreConfig) -> None:
    """Over 500 random calibration/test draws, mean coverage is k/(n+1), inside [1-a, 1-a+1/(n+1)].

    With n = 19, (n+1)(1-alpha) is whole for every alpha here, so taking one order statistic too
    many lands exactly on the upper end of the band; the sharper check against k/(n+1), with
    k worked out in exact decimal arithmetic, catches it (1/(n+1) = 0.05 is > 10 standard
    errors). With n = 100 the extra order statistic leaves the band itself.
    """
    rng = np.random.default_rng(20250 + n)
    trials, m = 500, 100
    probs, labels = questions(rng, trials * (n + m))
    true_scores = label_scores(score_matrix(probs, config, rng=rng), labels).reshape(trials, n + m)
    thresholds = np.array([conformal_threshold(row[:n], alpha) for row in true_scores])
    coverage = (true_scores[:, n:] <= thresholds[:, None]).mean(axis=1)
    mean, se = coverage.mean(), coverage.std(ddof=1) / math.sqrt(trials)
    k = math.ceil((n + 1) * (1 - Fraction(str(alpha))))
    assert abs(mean - k / (n + 1)) <= 4 * se
    assert 1 - alpha - 4 * se <= mean <= 1 - alpha + 1 / (n + 1) + 4 * se


def test_sets_from_calibrate_cover_fresh_questions() -> None:
    """End to end through the public API (not the reshaped shortcut above), with RAPS."""
    rng = np.random.default_rng(9)
    covered = []
    for _ in range(60):
        probs, labels = questions(rng, 300)
        config = ScoreConfig(method="raps", lam=0.02, k_reg=1, randomized=True)
        calibration = calibrate(probs[:100], labels[:100], alpha=0.1, score=config, rng=rng)
        sets = calibration.prediction_sets(probs[100:], rng=rng)
        covered.append(sets[np.arange(200), labels[100:]].mean())
    assert abs(np.mean(covered) - 91 / 101) < 4 * np.std(covered) / math.sqrt(60)


# --- properties ---------------------------------------------------------------------------------

alphas = st.floats(0.01, 0.99)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    a=alphas,
    b=alphas,
    method=st.sampled_from(["lac", "aps", "raps"]),
)
def test_sets_are_nested_and_threshold_monotone_in_alpha(
    seed: int, n: int, a: float, b: float, method: str
) -> None:
    low, high = sorted((a, b))
    rng = np.random.default_rng(seed)
    probs, labels = questions(rng, n + 20, k=5)
    config = (
        ScoreConfig(method="raps", lam=0.1, k_reg=2, randomized=True)
        if method == "raps"
        else ScoreConfig(method=method)
    )
    scores = score_matrix(probs, config, rng=seed)
    calibration_scores = label_scores(scores[:n], labels[:n])
    strict, loose = (
        conformal_threshold(calibration_scores, low),
        conformal_threshold(calibration_scores, high),
    )
    assert strict >= loose
    assert np.all(prediction_sets(scores[n:], loose) <= prediction_sets(scores[n:], strict))


@settings(max_examples=80, deadline=None)
@given(scores=st.lists(st.floats(0, 1), min_size=1, max_size=80), alpha=alphas)
def test_threshold_is_an_order_statistic_with_ties(scores: list[float], alpha: float) -> None:
    values = np.array(scores)
    k = conformal_rank(len(values), alpha)
    threshold = conformal_threshold(values, alpha)
    assert (k > len(values)) == (threshold == math.inf)
    if k <= len(values):
        assert threshold in values
        assert (values < threshold).sum() < k <= (values <= threshold).sum()
    assert k >= (len(values) + 1) * (1 - alpha) - 1e-9 * len(values)
    assert k - 1 < (len(values) + 1) * (1 - alpha) + 1e-9 * len(values)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), alpha=alphas)
def test_k_beyond_n_exactly_when_calibration_is_too_small(n: int, alpha: float) -> None:
    probs, labels = questions(np.random.default_rng(n), n)
    calibration = calibrate(probs, labels, alpha=alpha)
    assert calibration.full_sets == ((n + 1) * alpha < 1 - 1e-9)
    if calibration.full_sets:
        assert calibration.prediction_sets(questions(np.random.default_rng(0), 5)[0]).all()


# --- decisions ----------------------------------------------------------------------------------


def test_singleton_sets_answer_the_rest_abstain_or_return_the_set() -> None:
    sets = np.array([[False, True, False], [True, True, False], [False, False, False]])
    plain = decide(sets)
    assert [d.action for d in plain] == ["answer", "abstain", "abstain"]
    assert plain[0].answer == 1 and plain[1].options == (0, 1) and plain[2].options == ()
    shortlist = decide(sets, on_ambiguous="set")
    assert [d.action for d in shortlist] == ["answer", "set", "abstain"] and shortlist[1].answer is None
    assert singleton_answers(sets).tolist() == [1, -1, -1]
    with pytest.raises(ConformalError, match="boolean"):
        decide(sets.astype(int))
    with pytest.raises(ValueError, match="exactly when"):
        type(plain[0])(action="abstain", answer=2)
