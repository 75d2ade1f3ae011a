"""Adaptive conformal inference for the selective threshold, and the drift monitor switching it on."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from foveate.conformal import (
    AdaptiveThreshold,
    CoverageMonitor,
    crc_threshold,
    recovery_time,
    running_rate,
)
from foveate.errors import ConformalError

ALPHA = 0.1
GAMMA = 0.005


def draw(rng: np.random.Generator, n: int, accuracy: float) -> tuple[np.ndarray, np.ndarray]:
    """Confidences uniform on [0, 1], right with probability ``accuracy * confidence``."""
    confidence = rng.random(n)
    return confidence, rng.random(n) < accuracy * confidence


def run(gate: AdaptiveThreshold, confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """Gate a stream question by question; the answered-and-wrong indicators."""
    errors = np.zeros(confidence.shape[0], dtype=bool)
    for t, (c, ok) in enumerate(zip(confidence.tolist(), correct.tolist(), strict=True)):
        answered = gate.answer(c)
        gate.update(answered, ok)
        errors[t] = answered and not ok
    return errors


# --- the threshold is CRC's, read at alpha_t ------------------------------------------------------


def test_threshold_is_crc_threshold_at_every_level_ties_and_boundaries_included() -> None:
    rng = np.random.default_rng(0)
    confidence = np.round(rng.random(300), 2)  # many ties
    correct = rng.random(300) < confidence
    gate = AdaptiveThreshold(confidence, correct, ALPHA)
    n = confidence.shape[0]
    # k / (n + 1) are the levels where CRC's feasibility test is an equality: rounding decides there
    levels = [k / (n + 1) for k in range(1, n + 1)] + np.linspace(0.001, 0.999, 97).tolist()
    for level in levels:
        assert gate.threshold_at(level) == crc_threshold(confidence, correct, level).threshold, level
    assert gate.threshold == crc_threshold(confidence, correct, ALPHA).threshold
    assert gate.threshold_at(0.0) == gate.threshold_at(-0.2) == math.inf
    assert gate.threshold_at(1.0) == gate.threshold_at(1.3) == -math.inf


def test_a_level_at_or_below_zero_answers_nothing_however_large_the_calibration_set() -> None:
    # with 3000 calibration answers all right, even level 0.001 answers everything; ACI's
    # "alpha_t <= 0 answers nothing" must not be replaced by a small positive floor
    gate = AdaptiveThreshold(np.linspace(0, 1, 3000), np.ones(3000, dtype=bool), ALPHA, gamma=GAMMA)
    assert gate.threshold_at(1e-3) == -math.inf
    while gate.alpha_t > 0:
        assert gate.answer(0.0)
        gate.step(True)
    assert gate.threshold == math.inf and not gate.answer(1.0)
    assert gate.alpha_t > -GAMMA  # Lemma 4.1's lower end


# --- (c) the update, by hand ----------------------------------------------------------------------


def test_alpha_t_follows_the_aci_update_on_a_hand_checked_stream() -> None:
    # confidences 0.1 ... 0.9; wrong at 0.2, 0.5 and 0.7. CRC answers above lam when
    # (wrong above lam) + 1 <= level * 10: level 0.1 allows none above (lam = 0.7), 0.2 one (lam = 0.5)
    confidence = np.arange(1, 10) / 10
    correct = np.ones(9, dtype=bool)
    correct[[1, 4, 6]] = False
    gate = AdaptiveThreshold(confidence, correct, alpha=0.1, gamma=0.1)
    assert (gate.alpha_t, gate.steps, gate.threshold) == (0.1, 0, 0.7)
    assert gate.answer(0.75) and not gate.answer(0.7)

    assert gate.update(answered=True, correct=False) == pytest.approx(0.1 + 0.1 * (0.1 - 1))  # 0.01
    assert gate.threshold == math.inf  # 0.01 * 10 < 1: no threshold meets the budget
    assert gate.update(answered=False, correct=False) == pytest.approx(0.02)  # an abstention is no error
    assert gate.update(answered=True, correct=True) == pytest.approx(0.03)
    assert gate.update(answered=True, correct=False) == pytest.approx(0.03 - 0.09)  # -0.06: answer nothing
    assert gate.threshold == math.inf and not gate.answer(1e9)
    for _ in range(26):  # 26 abstentions: -0.06 + 26 * 0.01 = 0.2
        gate.update(answered=False, correct=True)
    assert gate.alpha_t == pytest.approx(0.2)
    assert gate.threshold == 0.5
    assert (gate.steps, gate.errors) == (30, 2)
    assert gate.error_rate == pytest.approx(2 / 30)
    assert gate.step(True) == pytest.approx(0.2 - 0.09)  # step takes the error indicator directly


def test_alpha_t_never_climbs_above_the_level_that_already_answers_everything() -> None:
    confidence = np.linspace(0.01, 1.0, 100)
    correct = np.ones(100, dtype=bool)
    correct[:30] = False  # answering everything is 30% wrong on the calibration data
    gate = AdaptiveThreshold(confidence, correct, ALPHA, gamma=0.05)
    assert gate.ceiling == pytest.approx(31 / 101)
    assert gate.threshold_at(gate.ceiling) == -math.inf
    assert gate.threshold_at(math.nextafter(gate.ceiling, 0.0)) > -math.inf
    for _ in range(1000):  # a long good spell: every answer right
        gate.update(answered=True, correct=True)
    assert gate.alpha_t == gate.ceiling and gate.threshold == -math.inf
    # after the spell, a run of wrong answers brings the threshold back within a few steps
    steps = 0
    while gate.threshold == -math.inf:
        gate.update(answered=True, correct=False)
        steps += 1
    assert steps == 1
    # an accurate model: answering everything already meets alpha, so alpha_t never exceeds it
    sharp = AdaptiveThreshold(confidence, np.arange(100) > 1, ALPHA)
    assert sharp.ceiling == ALPHA and sharp.threshold == -math.inf
    sharp.update(answered=True, correct=True)
    assert sharp.alpha_t == ALPHA


# --- (a) exchangeable stream ----------------------------------------------------------------------


def test_long_run_error_rate_is_within_the_paper_bound_on_an_exchangeable_stream() -> None:
    rng = np.random.default_rng(1)
    gate = AdaptiveThreshold(*draw(rng, 2000, 1.0), ALPHA, gamma=GAMMA)
    errors = run(gate, *draw(rng, 5000, 1.0))
    horizon = errors.shape[0]
    # Gibbs and Candès, Proposition 4.1:
    # |mean(err) - alpha| <= (max(alpha_1, 1 - alpha_1) + gamma) / (gamma T)
    paper = (max(ALPHA, 1 - ALPHA) + GAMMA) / (GAMMA * horizon)
    assert abs(errors.mean() - ALPHA) <= paper
    # the one-sided bound that holds here at every T (the gate reports it as max_error_rate)
    steps = np.arange(1, horizon + 1)
    assert np.all(np.cumsum(errors) / steps <= ALPHA + (ALPHA + GAMMA) / (GAMMA * steps) + 1e-12)
    assert gate.error_rate == errors.mean()
    assert gate.max_error_rate == pytest.approx(ALPHA + (ALPHA + GAMMA) / (GAMMA * horizon))
    assert abs(errors.mean() - ALPHA) < 0.005  # and in fact close to alpha, not just under it


# --- (b) a shift: accuracy falls at every confidence ---------------------------------------------


def test_after_a_shift_aci_comes_back_to_alpha_and_the_fixed_threshold_does_not() -> None:
    rng = np.random.default_rng(2)
    calibration = draw(rng, 2000, 1.0)
    gate = AdaptiveThreshold(*calibration, ALPHA, gamma=GAMMA)
    fixed = crc_threshold(*calibration, ALPHA).threshold
    half = 6000
    before, after = draw(rng, half, 1.0), draw(rng, half, 0.6)  # after: 60% of the accuracy, everywhere

    aci_before = run(gate, *before)
    alpha_at_shift = gate.alpha_t
    aci_after = run(gate, *after)
    fixed_after = (after[0] > fixed) & ~after[1]

    assert fixed_after.mean() > ALPHA + 0.1  # about 0.24: the fixed threshold answers far too much
    assert aci_after.mean() <= ALPHA + 0.01
    # the telescoping bound, restarted at the shift
    assert aci_after.mean() <= ALPHA + (alpha_at_shift + GAMMA) / (GAMMA * half)
    assert gate.threshold > fixed + 0.1  # it got stricter

    stream = np.concatenate([aci_before, aci_after])
    fixed_stream = np.concatenate([(before[0] > fixed) & ~before[1], fixed_after])
    aci_recovery = recovery_time(stream, ALPHA, start=half, window=500, tolerance=0.02)
    assert aci_recovery is not None and aci_recovery < 1500
    assert recovery_time(fixed_stream, ALPHA, start=half, window=500, tolerance=0.02) is None


# --- (d) the monitor switches it on at drift --------------------------------------------------------


def monitored() -> tuple[CoverageMonitor, AdaptiveThreshold]:
    rng = np.random.default_rng(3)
    gate = AdaptiveThreshold(*draw(rng, 1000, 1.0), ALPHA, gamma=0.01)
    return CoverageMonitor(ALPHA, level=0.001, window=200, adapt=gate), gate


def test_monitor_switches_adaptation_on_only_at_drift_and_then_feeds_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor, gate = monitored()
    with caplog.at_level(logging.INFO, logger="foveate.conformal.drift"):
        for t in range(400):  # 95% of answers right: no drift
            status = monitor.update_selective(answered=True, correct=t % 20 != 0)
            assert not status.adapting and not status.drifting
        assert monitor.threshold is None and not monitor.adapting and gate.steps == 0
        assert not caplog.records

        statuses = []
        while not monitor.adapting:
            statuses.append(monitor.update_selective(answered=True, correct=False))
        assert all(not s.adapting for s in statuses[:-1]) and not statuses[-2].drifting
        switched = statuses[-1]
        assert switched.adapting and switched.drifting
        assert monitor.adapting_since == monitor.feedback == 400 + len(statuses)
        assert gate.steps == 0  # the feedback that revealed the drift came from the fixed threshold
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "coverage drift" in warnings[0]
        assert f"adaptive threshold switched on at feedback {monitor.feedback}" in warnings[0]
        assert "adaptive threshold" in switched.message
        assert (
            monitor.threshold
            == gate.threshold
            == crc_threshold(*draw(np.random.default_rng(3), 1000, 1.0), ALPHA).threshold
        )

        monitor.update_selective(answered=True, correct=False)  # answered and wrong
        assert gate.alpha_t == pytest.approx(ALPHA - 0.01 * 0.9) and gate.steps == 1
        monitor.update_selective(answered=False, correct=False)  # abstained: no error
        assert gate.alpha_t == pytest.approx(ALPHA - 0.009 + 0.001) and gate.steps == 2
        status = monitor.update(False)  # the plain update feeds it too: not covered = answered and wrong
        assert gate.alpha_t == pytest.approx(ALPHA - 0.008 - 0.009) and gate.steps == 3
        assert status.adapting and monitor.threshold == gate.threshold
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1  # warned once

        recovered = monitor.update(np.ones(200, dtype=bool))
        assert not recovered.drifting and recovered.adapting  # stays on after coverage recovers
        assert gate.steps == 203 and "adaptive threshold" in recovered.message
        assert monitor.update_selective(True, True).adapting and monitor.threshold == gate.threshold
        assert gate.steps == 204


def test_drift_is_checked_once_per_batch_and_the_batch_that_reveals_it_does_not_step_the_gate() -> None:
    monitor, gate = monitored()
    monitor.update_selective([True] * 400, [t % 20 != 0 for t in range(400)])
    assert not monitor.adapting
    status = monitor.update_selective([True] * 100, [False] * 100)  # drift shows well inside the batch
    assert status.adapting and monitor.adapting_since == 500 and gate.steps == 0
    monitor.update_selective([True, False], [False, True])
    assert gate.steps == 2 and gate.alpha_t == pytest.approx(ALPHA - 0.01 * 0.9 + 0.01 * 0.1)


def test_monitor_without_adapt_never_adapts_and_checks_its_arguments() -> None:
    plain = CoverageMonitor(ALPHA, min_feedback=20)
    status = plain.update_selective([True] * 30, [False] * 30)
    assert status.drifting and not status.adapting and plain.threshold is None
    assert plain.update_selective([False, True], [False, True]).covered == 32 - 30
    _, gate = monitored()
    with pytest.raises(ConformalError, match="adapt must target the monitor's alpha 0.2"):
        CoverageMonitor(0.2, adapt=gate)
    with pytest.raises(ConformalError, match="correct must have 2 entries"):
        plain.update_selective([True, True], [True])
    with pytest.raises(ConformalError, match="answered must be booleans"):
        plain.update_selective([0.5], [True])


# --- (e) recovery_time and running_rate ---------------------------------------------------------


def test_running_rate_is_the_trailing_window_mean() -> None:
    rate = running_rate([1, 0, 0, 1, 1, 0], window=3)
    assert np.isnan(rate[:2]).all()
    np.testing.assert_allclose(rate[2:], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    assert np.isnan(running_rate([1, 0], window=3)).all()
    np.testing.assert_array_equal(running_rate([True, False], window=1), [1.0, 0.0])


def test_recovery_time_edge_cases() -> None:
    bad = np.ones(50, dtype=bool)
    assert recovery_time(bad, ALPHA, start=10, window=5) is None  # never
    calm = np.zeros(50, dtype=bool)
    assert recovery_time(calm, ALPHA, start=10, window=5) == 5  # immediately: the first full window
    assert recovery_time(calm, ALPHA, start=46, window=5) is None  # fewer than a window after start
    assert recovery_time(calm, ALPHA, start=45, window=5) == 5
    # errors before start do not count, errors after it do, and the tolerance widens alpha
    stream = np.r_[np.ones(10), np.ones(4), np.zeros(20)].astype(bool)
    assert recovery_time(stream, ALPHA, start=10, window=5) == 9  # window 10..14 -> 14..18: first all-zero
    assert recovery_time(stream, ALPHA, start=10, window=5, tolerance=0.15) == 8  # one error in 5 <= 0.25
    assert recovery_time(stream, 0.2, start=10, window=5) == 8  # exactly alpha counts as recovered


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start": -1}, "start must lie in"),
        ({"start": 50}, "start must lie in"),
        ({"start": 1.5}, "start must be an integer"),
        ({"start": True}, "start must be an integer"),
        ({"window": 0}, "window must be a positive integer"),
        ({"window": 2.0}, "window must be a positive integer"),
        ({"tolerance": -0.01}, "tolerance must be finite and non-negative"),
        ({"tolerance": math.nan}, "tolerance must be finite and non-negative"),
        ({"tolerance": "x"}, "tolerance must be a number"),
        ({"alpha": 0.0}, "alpha must lie strictly between 0 and 1"),
        ({"errors": [0, 2]}, "errors must be booleans"),
        ({"errors": []}, "errors is empty"),
    ],
)
def test_recovery_time_names_the_bad_argument(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"errors": np.zeros(50, dtype=bool), "alpha": ALPHA, "start": 0, "window": 5}
    args.update(kwargs)
    with pytest.raises(ConformalError, match=match):
        recovery_time(args.pop("errors"), **args)  # type: ignore[arg-type]


def test_adaptive_threshold_names_its_bad_arguments() -> None:
    confidence, correct = np.linspace(0, 1, 10), np.ones(10, dtype=bool)
    for gamma in (0.0, -0.1, math.inf, math.nan):
        with pytest.raises(ConformalError, match="gamma must be finite and greater than 0"):
            AdaptiveThreshold(confidence, correct, ALPHA, gamma=gamma)
    with pytest.raises(ConformalError, match="gamma must be a positive number"):
        AdaptiveThreshold(confidence, correct, ALPHA, gamma="fast")  # type: ignore[arg-type]
    with pytest.raises(ConformalError, match="alpha must lie strictly"):
        AdaptiveThreshold(confidence, correct, 1.0)
    with pytest.raises(ConformalError, match="correct must have 10 entries"):
        AdaptiveThreshold(confidence, correct[:3], ALPHA)
    gate = AdaptiveThreshold(confidence, correct, ALPHA)
    with pytest.raises(ConformalError, match="answered must be a boolean"):
        gate.update(answered=0.5, correct=True)  # type: ignore[arg-type]
    with pytest.raises(ConformalError, match="correct must be a boolean"):
        gate.update(answered=True, correct=None)  # type: ignore[arg-type]
    with pytest.raises(ConformalError, match="confidence must be finite"):
        gate.answer(math.nan)
    assert gate.steps == 0 and gate.alpha_t == ALPHA and math.isnan(gate.error_rate)
