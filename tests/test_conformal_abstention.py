"""Calibrated abstention: binomial tails, risk control, Learn then Test, the learned policy,
evaluation metrics and the drift monitor."""

from __future__ import annotations

import json
import logging
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binom
from sklearn.metrics import roc_auc_score

from foveate.conformal import (
    AbstentionPolicy,
    CoverageMonitor,
    SelectiveCalibration,
    auarc,
    aurc,
    auroc,
    binomial_cdf,
    crc_threshold,
    fit_abstention_policy,
    hoeffding_bentkus_pvalue,
    ltt_threshold,
    risk_coverage_curve,
    selective_report,
)
from foveate.conformal.binomial import bentkus_pvalue, hoeffding_pvalue
from foveate.errors import ConformalError

# A selective-answering world with known truth: confidence c ~ Uniform(0.25, 1) and the answer
# is right with probability c. Answering when c > lam then has
#   P(answered and wrong) = (1 - lam)^2 / 1.5      and      P(wrong | answered) = (1 - lam) / 2.
LOW = 0.25


def world(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    confidence = rng.uniform(LOW, 1.0, size=n)
    return confidence, rng.random(n) < confidence


def answered_and_wrong(lam: float) -> float:
    lam = min(max(lam, LOW), 1.0)
    return (1.0 - lam) ** 2 / (2 * (1.0 - LOW))


def wrong_given_answered(lam: float) -> float:
    return (1.0 - min(max(lam, LOW), 1.0)) / 2.0


def questions(rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Option probabilities of an over-confident model (true options drawn at a softer temperature)."""
    logits = rng.normal(size=(n, k)) * 2.5
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    truth = np.exp(logits / 1.6)
    truth /= truth.sum(axis=1, keepdims=True)
    labels = np.minimum((rng.random((n, 1)) > truth.cumsum(axis=1)).sum(axis=1), k - 1)
    return probs, labels


# --- binomial tails and p-values ----------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 300), p=st.floats(0, 1), fraction=st.floats(-0.1, 1.1))
def test_binomial_cdf_is_exact_in_the_far_tails(n: int, p: float, fraction: float) -> None:
    """Against exact rational arithmetic (scipy itself is off by 1e-8 near 1e-288)."""
    k = math.floor(fraction * n)
    a, b = Fraction(p).as_integer_ratio()  # p = a / b exactly: sum in integers, divide once
    total = sum(math.comb(n, j) * a**j * (b - a) ** (n - j) for j in range(min(k, n) + 1))
    exact = float(Fraction(total, b**n))
    assert binomial_cdf(k, n, p) == pytest.approx(exact, rel=1e-10, abs=1e-305)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(300, 20_000), p=st.floats(0.001, 0.999), fraction=st.floats(0, 1))
def test_binomial_cdf_matches_scipy_for_large_n(n: int, p: float, fraction: float) -> None:
    k = math.floor(fraction * n)
    expected = float(binom.cdf(k, n, p))
    assert binomial_cdf(k, n, p) == pytest.approx(expected, rel=1e-8, abs=1e-200)


def test_hoeffding_and_bentkus_pvalues_follow_their_formulas() -> None:
    n, alpha, wrong = 200, 0.1, 8
    kl = 0.04 * math.log(0.04 / 0.1) + 0.96 * math.log(0.96 / 0.9)
    assert hoeffding_pvalue(wrong / n, n, alpha) == pytest.approx(math.exp(-n * kl))
    assert bentkus_pvalue(wrong / n, n, alpha) == pytest.approx(math.e * binom.cdf(wrong, n, alpha))
    assert hoeffding_bentkus_pvalue(wrong / n, n, alpha) == min(
        hoeffding_pvalue(wrong / n, n, alpha), bentkus_pvalue(wrong / n, n, alpha)
    )
    assert hoeffding_pvalue(0.3, 50, 0.1) == 1.0  # an empirical risk above alpha is no evidence
    assert hoeffding_bentkus_pvalue(0.0, 0, 0.1) == 1.0  # nothing observed, nothing rejected


@pytest.mark.parametrize(("n", "risk"), [(30, 0.1), (200, 0.1), (200, 0.12), (1000, 0.05)])
def test_hb_pvalue_is_valid_under_the_null(n: int, risk: float) -> None:
    """Exactly, over the binomial law: if the true risk is >= alpha, P(p <= delta) <= delta."""
    alpha = min(risk, 0.1)
    counts = np.arange(n + 1)
    pmf = binom.pmf(counts, n, risk)
    pvalues = np.array([hoeffding_bentkus_pvalue(c / n, n, alpha) for c in counts])
    for delta in (0.01, 0.05, 0.1, 0.2):
        assert pmf[pvalues <= delta].sum() <= delta
    assert pvalues[: int(n * alpha / 3)].max(initial=0.0) < 0.2 or n < 100  # and it does reject clear wins


# --- conformal risk control ---------------------------------------------------------------------


def test_crc_picks_the_infimum_of_the_feasible_thresholds() -> None:
    confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    correct = np.array([1, 1, 0, 1, 1, 0, 1, 0, 0], dtype=bool)
    # n = 9: need wrong answered + 1 <= alpha * 10. alpha = 0.3 allows 2 wrong: answer c > 0.2
    # (0.7 and 0.4 wrong); answering 0.2 as well would make it 3.
    result = crc_threshold(confidence, correct, alpha=0.3)
    assert result.threshold == 0.2 and result.answered == 7 and result.wrong == 2
    # alpha = 0.11 allows none: answer above 0.7 only
    assert crc_threshold(confidence, correct, alpha=0.11).threshold == 0.7
    # alpha = 0.09 < 1/(n+1): no threshold qualifies, answer nothing
    nothing = crc_threshold(confidence, correct, alpha=0.09)
    assert nothing.threshold == math.inf and nothing.answer_mask([1.0]).tolist() == [False]
    # everything right: answer everything
    assert crc_threshold(confidence, np.ones(9, dtype=bool), alpha=0.2).threshold == -math.inf


@settings(max_examples=80, deadline=None)
@given(
    confidence=st.lists(st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.7, 0.9]), min_size=1, max_size=60),
    seed=st.integers(0, 1000),
    alpha=st.floats(0.01, 0.99),
)
def test_crc_threshold_is_feasible_and_any_lower_candidate_is_not(
    confidence: list[float], seed: int, alpha: float
) -> None:
    c = np.array(confidence)
    correct = np.random.default_rng(seed).random(len(c)) < 0.6
    n = len(c)
    result = crc_threshold(c, correct, alpha)

    def feasible(lam: float) -> bool:
        return ((c > lam) & ~correct).sum() + 1 <= alpha * (n + 1) * (1 + 1e-12)

    candidates = [-math.inf, *sorted(set(confidence))]
    if result.threshold == math.inf:
        assert not any(feasible(lam) for lam in candidates)
    else:
        assert feasible(result.threshold)
        assert not any(feasible(lam) for lam in candidates if lam < result.threshold)


def test_crc_bounds_answered_and_wrong_on_average_and_is_nearly_tight() -> None:
    rng = np.random.default_rng(1)
    alpha, n, trials = 0.1, 100, 2000
    risks = np.array(
        [answered_and_wrong(crc_threshold(*world(rng, n), alpha).threshold) for _ in range(trials)]
    )
    se = risks.std(ddof=1) / math.sqrt(trials)
    assert risks.mean() <= alpha + 3 * se
    assert risks.mean() >= alpha - 2 / (n + 1) - 3 * se  # CRC's own lower bound: not over-cautious


# --- Learn then Test ----------------------------------------------------------------------------


def test_ltt_bounds_error_among_answered_with_probability_one_minus_delta() -> None:
    rng = np.random.default_rng(2)
    alpha, delta, n, trials = 0.1, 0.1, 1000, 200
    chosen = [ltt_threshold(*world(rng, n), alpha, delta) for _ in range(trials)]
    violations = np.mean([wrong_given_answered(r.threshold) > alpha for r in chosen])
    assert violations <= delta + 3 * math.sqrt(delta * (1 - delta) / trials)
    # and it answers something (the certifiable region c > 0.8 holds ~27% of questions; fixed
    # sequence testing gives up at the strict end in about a quarter of the draws)
    assert np.mean([r.answered for r in chosen]) > 0.05 * n


def test_naive_empirical_threshold_would_fail_the_same_ltt_check() -> None:
    """Control for the test above: 'empirical error among answered <= alpha' violates half the time."""
    rng = np.random.default_rng(2)
    alpha, n, trials, violations = 0.1, 1000, 200, 0
    for _ in range(trials):
        c, ok = world(rng, n)
        order = np.argsort(-c)
        running = np.cumsum(~ok[order]) / np.arange(1, n + 1)
        last = int(np.flatnonzero(running <= alpha)[-1])
        violations += wrong_given_answered(float(c[order][last]) - 1e-12) > alpha
    assert violations / trials > 0.3


def test_ltt_skips_thin_thresholds_and_stops_at_the_first_failure() -> None:
    c = np.linspace(0.0, 1.0, 400, endpoint=False)
    ok = ~((c > 0.45) & (c <= 0.5))  # 20 wrong answers in a band, right everywhere else

    def ltt(*candidates: float) -> SelectiveCalibration:
        return ltt_threshold(c, ok, alpha=0.1, delta=0.1, candidates=candidates, min_answered=30)

    # alone: 0.9 (39 answered, none wrong) and 0.1 (20 of 359 wrong) pass, 0.45 (20 of 220) fails
    assert [ltt(lam).threshold for lam in (0.9, 0.45, 0.1)] == [0.9, math.inf, 0.1]
    # in sequence, the failure at 0.45 stops the testing before 0.1; 0.99 answers 4 and is skipped
    result = ltt(0.1, 0.45, 0.5, 0.9, 0.99)
    assert result.threshold == 0.5 and (result.answered, result.wrong) == (199, 0)
    assert ltt(0.99, 0.45, 0.1).threshold == math.inf
    # with the default minimum (94 answered for alpha = delta = 0.1), 0.9 is too thin to test
    assert ltt_threshold(c, ok, alpha=0.1, delta=0.1, candidates=[0.9]).threshold == math.inf
    with pytest.raises(ConformalError, match="candidate thresholds"):
        ltt_threshold(c * 3, ok, alpha=0.1)


# --- learned policy -----------------------------------------------------------------------------


def test_learned_policy_keeps_the_crc_guarantee() -> None:
    rng = np.random.default_rng(3)
    alpha, trials = 0.1, 60
    rates = []
    for _ in range(trials):
        probs, labels = questions(rng, 1400)
        policy = fit_abstention_policy(probs[:400], labels[:400], alpha, rng=rng)
        answers = policy.answers(probs[400:])
        rates.append(selective_report(answers, labels[400:]).answered_and_wrong_rate)
    rates_array = np.array(rates)
    assert rates_array.mean() <= alpha + 3 * rates_array.std(ddof=1) / math.sqrt(trials)
    assert rates_array.mean() > alpha / 2  # it does answer: the bound is used, not dodged


def test_learned_policy_confidence_spots_wrong_answers_and_round_trips() -> None:
    rng = np.random.default_rng(4)
    probs, labels = questions(rng, 4000)
    policy = fit_abstention_policy(probs[:2000], labels[:2000], 0.2, guarantee="ltt", delta=0.1)
    test, truth = probs[2000:], labels[2000:]
    right = test.argmax(axis=1) == truth
    learned = auroc(policy.confidence(test), right)
    assert learned > 0.7 and learned >= auroc(test.max(axis=1), right) - 0.02
    again = AbstentionPolicy.model_validate_json(policy.model_dump_json())
    assert np.array_equal(again.answers(test), policy.answers(test))
    assert policy.selection.method == "ltt" and policy.trained_on == policy.calibrated_on == 1000
    report = selective_report(policy.answers(test), truth)
    assert 0.1 < report.answered_rate < 1 and report.selective_accuracy >= 0.8 - 0.03


def test_policy_refuses_a_calibration_set_too_small_to_split() -> None:
    probs, labels = questions(np.random.default_rng(5), 2)
    with pytest.raises(ConformalError, match="cannot split 2"):
        fit_abstention_policy(probs, labels, 0.1)


# --- metrics ------------------------------------------------------------------------------------


def test_risk_coverage_curve_steps_over_ties() -> None:
    confidence = [0.9, 0.8, 0.8, 0.3]
    correct = [True, False, True, False]
    curve = risk_coverage_curve(confidence, correct)
    assert curve.threshold.tolist() == [0.9, 0.8, 0.3]
    assert curve.coverage.tolist() == [0.25, 0.75, 1.0]
    assert np.allclose(curve.risk, [0.0, 1 / 3, 0.5])
    assert aurc(confidence, correct) == pytest.approx(0.5 * (1 / 3) + 0.25 * 0.5)
    assert auarc(confidence, correct) == pytest.approx(1 - aurc(confidence, correct))
    assert auroc(confidence, correct) == pytest.approx(3.5 / 4)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 80))
def test_metrics_match_reference_definitions(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    confidence = rng.permutation(n) / n  # distinct, so AURC is the plain mean over top-j prefixes
    correct = rng.random(n) < confidence
    order = np.argsort(-confidence)
    top_j_risk = np.cumsum(~correct[order]) / np.arange(1, n + 1)
    assert aurc(confidence, correct) == pytest.approx(top_j_risk.mean())
    tied = np.round(confidence, 1)  # ties: compare AUROC with scikit-learn
    if 0 < correct.sum() < n:
        assert auroc(tied, correct) == pytest.approx(roc_auc_score(correct, tied))


def test_an_abstention_is_never_a_correct_answer() -> None:
    report = selective_report([-1, 2, 0, -1], [0, 2, 1, 3])
    assert (report.answered, report.answered_rate) == (2, 0.5)
    assert report.selective_accuracy == 0.5 and report.accuracy == 0.25
    assert report.answered_and_wrong_rate == 0.25
    silent = selective_report([-1, -1], [0, 1])
    assert silent.accuracy == 0.0 and math.isnan(silent.selective_accuracy)
    assert math.isnan(json.loads(silent.model_dump_json())["selective_accuracy"])
    with pytest.raises(ConformalError, match="right and one wrong"):
        auroc([0.2, 0.9], [True, True])


# --- drift monitor ------------------------------------------------------------------------------


def test_monitor_pvalue_is_the_exact_binomial_lower_tail() -> None:
    monitor = CoverageMonitor(alpha=0.1)
    status = monitor.update([True] * 165 + [False] * 35)
    assert (status.seen, status.covered) == (200, 165)
    assert status.p_value == pytest.approx(binom.cdf(165, 200, 0.9), rel=1e-9)
    assert status.drifting  # 82.5% of 200 against a 90% target: p = 0.0008 <= 0.01
    assert not CoverageMonitor(alpha=0.1, level=0.0005).update([True] * 165 + [False] * 35).drifting
    assert not CoverageMonitor(alpha=0.1).update([True] * 170 + [False] * 30).drifting  # p = 0.016


def test_monitor_stays_quiet_at_target_and_warns_once_on_drift(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(6)
    monitor = CoverageMonitor(alpha=0.1, level=0.001, window=200)
    with caplog.at_level(logging.INFO, logger="foveate.conformal.drift"):
        calm = [monitor.update(bool(x)) for x in rng.random(1000) < 0.9]
        assert not any(s.drifting for s in calm) and not caplog.records
        drifted = [monitor.update(bool(x)) for x in rng.random(400) < 0.7]
        assert drifted[-1].drifting and "recalibrate" in drifted[-1].message
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "coverage drift" in warnings[0].getMessage()
        recovered = monitor.update(np.ones(200, dtype=bool))
        assert not recovered.drifting and recovered.seen == 200 and recovered.coverage == 1.0
        assert caplog.records[-1].levelno == logging.INFO


def test_monitor_waits_for_enough_feedback_and_refuses_non_booleans() -> None:
    monitor = CoverageMonitor(alpha=0.1, min_feedback=20)
    assert not monitor.update([False] * 19).drifting
    assert monitor.update(False).drifting
    assert math.isnan(CoverageMonitor(alpha=0.2).status().coverage)
    with pytest.raises(ConformalError, match="booleans"):
        monitor.update([0.5])
    with pytest.raises(ConformalError, match="window"):
        CoverageMonitor(alpha=0.1, window=0)


def test_selective_calibration_serialises_infinite_thresholds() -> None:
    result = crc_threshold([0.5, 0.6], [False, False], alpha=0.2)
    assert result.threshold == math.inf
    assert SelectiveCalibration.model_validate_json(result.model_dump_json()) == result
    assert "P(answered and wrong) <= 0.2" in result.guarantee


def test_policy_without_a_feasible_threshold_abstains_and_still_serialises() -> None:
    probs, labels = questions(np.random.default_rng(8), 40)
    policy = fit_abstention_policy(probs, labels, alpha=0.01)  # 1/(20+1) > 0.01: nothing qualifies
    assert policy.selection.threshold == math.inf and '"threshold":Infinity' in policy.model_dump_json()
    assert (AbstentionPolicy.model_validate_json(policy.model_dump_json()).answers(probs) == -1).all()
