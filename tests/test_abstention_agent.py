"""The abstention agent on calibrations fitted to synthetic scores (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.conformal import calibrate, crc_threshold
from foveate.conformal.gate import abstain_or_answer
from foveate.errors import ConformalError

OPTIONS = ["red", "green", "blue", "yellow"]


def _scores(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A model that is right about 70% of the time, more confident when right."""
    labels = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), labels] += rng.choice([3.0, 0.0], n, p=[0.7, 0.3])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return probs, labels


def test_conformal_agent_answers_confident_questions_and_abstains_on_ambiguous_ones() -> None:
    rng = np.random.default_rng(0)
    probs, labels = _scores(500, rng)
    calibration = calibrate(probs, labels, alpha=0.2, score="lac")
    sure = abstain_or_answer(OPTIONS, [0.97, 0.01, 0.01, 0.01], calibration)
    assert sure.action == "answer" and sure.answer == "red" and sure.kept == ["red"]
    torn = abstain_or_answer(OPTIONS, [0.3, 0.3, 0.2, 0.2], calibration)
    assert torn.action == "abstain" and torn.answer is None and len(torn.kept) >= 2
    as_set = abstain_or_answer(OPTIONS, [0.3, 0.3, 0.2, 0.2], calibration, on_ambiguous="set")
    assert as_set.action == "set" and as_set.kept == torn.kept
    # the agent's decisions are the calibration's sets: on fresh questions the kept sets cover the truth
    test_probs, test_labels = _scores(2000, rng)
    covered = [
        OPTIONS[y] in abstain_or_answer(OPTIONS, p, calibration, on_ambiguous="set").kept
        for p, y in zip(test_probs, test_labels, strict=True)
    ]
    assert np.mean(covered) >= 1 - 0.2 - 0.03


def test_selective_agent_bounds_answered_and_wrong() -> None:
    rng = np.random.default_rng(1)
    probs, labels = _scores(1000, rng)
    calibration = crc_threshold(probs.max(axis=1), probs.argmax(axis=1) == labels, alpha=0.1)
    test_probs, test_labels = _scores(3000, rng)
    results = [abstain_or_answer(OPTIONS, p, calibration) for p in test_probs]
    answered_wrong = [
        r.action == "answer" and r.answer != OPTIONS[y] for r, y in zip(results, test_labels, strict=True)
    ]
    assert np.mean(answered_wrong) <= 0.1 + 0.02
    assert 0 < np.mean([r.action == "answer" for r in results]) < 1
    assert all(r.action in ("answer", "abstain") for r in results)


def test_bad_input_names_the_problem() -> None:
    rng = np.random.default_rng(2)
    probs, labels = _scores(100, rng)
    calibration = calibrate(probs, labels, alpha=0.1)
    with pytest.raises(ConformalError, match="one probability per option"):
        abstain_or_answer(OPTIONS, [0.5, 0.5], calibration)
