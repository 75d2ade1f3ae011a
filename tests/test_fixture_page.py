"""The fixture page's arithmetic (``foveate.evaluation.fixture``): pooled measures over seeds and their
bootstrap intervals, checked on outcomes made up here (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from foveate.evaluation.fixture import FixtureReport, SceneOutcome, _sorted_auroc, auroc


def _outcomes(seed: int, n: int, crop_rate: float, rng: np.random.Generator) -> list[SceneOutcome]:
    return [
        SceneOutcome(
            seed=seed,
            category="attribute" if i % 2 else "relation",
            size="10-19",
            crop_ok=bool(rng.random() < crop_rate),
            whole_ok=bool(rng.random() < 0.4),
            p_present=float(rng.choice([0.2, 0.5, 0.9])),  # ties on purpose
            p_absent=float(rng.choice([0.1, 0.5, 0.6])),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_bootstrap_auroc_equals_the_pairwise_one(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pos, neg = rng.choice([0.1, 0.3, 0.5], 40), rng.choice([0.1, 0.2, 0.5], 55)
    assert _sorted_auroc(pos, neg) == pytest.approx(auroc(list(pos), list(neg)), abs=1e-12)


def test_pooled_measures_are_the_means_over_seeds_with_intervals_around_them() -> None:
    rng = np.random.default_rng(3)
    per_seed = [_outcomes(s, 200, rate, rng) for s, rate in ((17, 0.95), (27, 0.85))]
    report = FixtureReport("plain", per_seed[0] + per_seed[1])
    assert report.seeds == [17, 27] and report.n == 200
    means = [FixtureReport("plain", o).crop_accuracy for o in per_seed]
    assert report.crop_accuracy == pytest.approx(np.mean(means))
    assert [r.crop_accuracy for r in report.per_seed()] == pytest.approx(means)
    for measure, value in (("crop", report.crop_accuracy), ("auroc", report.existence_auroc)):
        low, high = report.interval(measure)
        assert low < value < high and high - low < 0.2
    # fewer scenes, wider interval
    small = FixtureReport("plain", per_seed[0][:20] + per_seed[1][:20])
    assert np.diff(small.interval("crop"))[0] > np.diff(report.interval("crop"))[0]
