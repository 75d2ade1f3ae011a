"""Nonconformity scores for multiple-choice questions, from a matrix of option probabilities.

A score says how strange an option would be as the answer: the larger, the less plausible.
Split conformal keeps every option whose score is at most a calibrated threshold, so the
score decides the *shape* of the prediction sets while the threshold decides their coverage:

- **LAC** (Sadinle, Lei and Wasserman 2019): ``1 - p(y)``. Smallest sets on average, but
  they adapt little to how hard a question is.
- **APS** (Romano, Sesia and Candès 2020): the probability mass of the options *at least as
  likely as* ``y``. Sets grow on hard questions, where the mass is spread out. With
  ``randomized=True`` the score is that mass minus ``u * p(y)`` for a uniform ``u`` drawn once
  per question, which makes coverage tight instead of conservative.
- **RAPS** (Angelopoulos et al. 2021): APS plus ``lam * max(0, rank(y) - k_reg)``, a penalty
  for options ranked beyond ``k_reg`` that keeps long tails of unlikely options out of sets.

Ties are part of the definition, not of an ``argsort``: options with exactly the same
probability get the same APS/RAPS score (and rank), so a set holds both or neither and no
result depends on the order in which options were listed.

Every function returns an (n, K) matrix with the score of every option; the calibration
score of a question is the entry of its true option (``label_scores``).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from foveate.conformal.checks import RandomSource, check_labels, check_probabilities, check_rng
from foveate.errors import ConformalError

ScoreMethod = Literal["lac", "aps", "raps"]
FloatMatrix = npt.NDArray[np.float64]


class ScoreConfig(BaseModel):
    """Which score, and its settings; stored with a calibration so prediction uses the same."""

    model_config = ConfigDict(frozen=True)
    method: ScoreMethod = "lac"
    randomized: bool = False
    lam: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    k_reg: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _settings_belong_to_method(self) -> ScoreConfig:
        if self.method == "lac" and self.randomized:
            raise ValueError("LAC has nothing to randomise; use method='aps' or 'raps'")
        if self.method != "raps" and (self.lam != 0.0 or self.k_reg != 0):
            raise ValueError(f"lam and k_reg are RAPS settings; method {self.method!r} ignores them")
        return self


def as_score_config(score: ScoreConfig | str) -> ScoreConfig:
    """A ``ScoreConfig`` as given, or the default settings of a method named "lac", "aps" or "raps"."""
    if isinstance(score, ScoreConfig):
        return score
    if score not in ("lac", "aps", "raps"):
        raise ConformalError(f"unknown score {score!r}; use 'lac', 'aps', 'raps' or a ScoreConfig")
    return ScoreConfig(method=cast(ScoreMethod, score))


def lac_scores(probs: Any) -> FloatMatrix:
    """``1 - p(option)`` for every option."""
    return 1.0 - check_probabilities(probs)


def aps_scores(probs: Any, u: Any = None) -> FloatMatrix:
    """Mass of the options at least as likely as each option, minus ``u * p(option)`` if ``u``.

    ``u`` is one uniform number per question (shape (n,)), shared by its options so that the
    randomised set of a question is still a most-likely-first prefix. ``None``: not randomised.
    """
    p = check_probabilities(probs)
    mass, _ = _mass_and_rank(p)
    return _randomize(mass, p, u)


def raps_scores(probs: Any, lam: float, k_reg: int, u: Any = None) -> FloatMatrix:
    """APS plus ``lam * max(0, rank - k_reg)``, the rank counting options at least as likely (1 = top)."""
    if not (lam >= 0.0 and np.isfinite(lam)):
        raise ConformalError(f"RAPS lam must be a finite number >= 0, got {lam!r}")
    if int(k_reg) != k_reg or k_reg < 0:
        raise ConformalError(f"RAPS k_reg must be an integer >= 0, got {k_reg!r}")
    p = check_probabilities(probs)
    mass, rank = _mass_and_rank(p)
    return _randomize(mass, p, u) + lam * np.maximum(rank - int(k_reg), 0)


def score_matrix(probs: Any, config: ScoreConfig, rng: RandomSource = None) -> FloatMatrix:
    """Scores of every option under ``config``; draws the uniforms from ``rng`` when randomised.

    ``rng`` only matters for randomised APS/RAPS; pass a seed or a ``Generator`` for
    reproducible sets (``None`` draws fresh, unseeded numbers).
    """
    p = check_probabilities(probs)
    u = draw_uniforms(p.shape[0], rng) if config.randomized else None
    if config.method == "lac":
        return 1.0 - p
    if config.method == "aps":
        return aps_scores(p, u)
    return raps_scores(p, config.lam, config.k_reg, u)


def label_scores(scores: Any, labels: Any) -> npt.NDArray[np.float64]:
    """The score of each question's true option: the calibration scores, shape (n,)."""
    matrix = np.asarray(scores, dtype=np.float64)
    if matrix.ndim != 2:
        raise ConformalError(f"scores must be a 2-D (questions, options) matrix, got shape {matrix.shape}")
    y = check_labels(labels, matrix.shape[0], matrix.shape[1])
    return matrix[np.arange(matrix.shape[0]), y]


def draw_uniforms(n: int, rng: RandomSource) -> npt.NDArray[np.float64]:
    """One uniform number in [0, 1) per question, for randomised scores."""
    return check_rng(rng).random(n)


def _mass_and_rank(p: FloatMatrix) -> tuple[FloatMatrix, FloatMatrix]:
    """Per option: total probability of the options with p >= its own, and how many they are.

    Sort each row most likely first and take cumulative sums; within a run of equal
    probabilities every member gets the value at the end of the run (all of them are "at least
    as likely"). Runs are found with a reversed running minimum over run ends, which works
    because cumulative mass and position never decrease along a sorted row.
    """
    n, k = p.shape
    order = np.argsort(-p, axis=1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=1)
    cumulative = np.cumsum(sorted_p, axis=1)
    position = np.broadcast_to(np.arange(1, k + 1, dtype=np.float64), (n, k))
    run_end = np.ones((n, k), dtype=bool)
    run_end[:, :-1] = sorted_p[:, 1:] != sorted_p[:, :-1]
    mass_sorted = _fill_back(np.where(run_end, cumulative, np.inf))
    rank_sorted = _fill_back(np.where(run_end, position, np.inf))
    mass = np.empty_like(p)
    rank = np.empty_like(p)
    np.put_along_axis(mass, order, mass_sorted, axis=1)
    np.put_along_axis(rank, order, rank_sorted, axis=1)
    return mass, rank


def _fill_back(values: FloatMatrix) -> FloatMatrix:
    """Each entry becomes the first finite value at or after it in its row."""
    return np.minimum.accumulate(values[:, ::-1], axis=1)[:, ::-1]


def _randomize(mass: FloatMatrix, p: FloatMatrix, u: Any) -> FloatMatrix:
    if u is None:
        return mass
    draws = np.asarray(u, dtype=np.float64)
    if draws.shape != (p.shape[0],):
        raise ConformalError(
            f"u must hold one uniform per question, shape ({p.shape[0]},), got {draws.shape}"
        )
    if np.any((draws < 0) | (draws > 1)) or not np.all(np.isfinite(draws)):
        raise ConformalError("u must hold numbers in [0, 1]")
    return mass - draws[:, None] * p
