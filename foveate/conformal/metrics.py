"""How good is an answer-or-abstain system: risk-coverage, AURC, AUARC, AUROC, selective accuracy.

One rule throughout: an abstention is never a correct answer. Some published evaluation code
(the CAP repository) scores an abstention as correct with confidence 1.0, which makes every
abstaining policy look better on AUROC and AUARC the more it abstains. Here abstentions are
either left out (selective accuracy: accuracy *among answered* questions, reported next to
how many were answered) or counted as not correct (``accuracy``).

Confidence-based curves take the confidence of every question and whether the answer the
system *would* give is correct; the curve then says what each possible threshold buys.
Questions with equal confidence are answered or skipped together by any threshold, so the
curves step over them as one group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from foveate.conformal.checks import check_flags, check_vector
from foveate.errors import ConformalError


@dataclass(frozen=True)
class RiskCoverage:
    """Selective risk at each coverage reachable by a threshold, most confident first.

    ``coverage[i]`` of the questions have confidence >= ``threshold[i]``; ``risk[i]`` is the
    share of them whose answer is wrong.
    """

    threshold: npt.NDArray[np.float64]
    coverage: npt.NDArray[np.float64]
    risk: npt.NDArray[np.float64]

    @property
    def aurc(self) -> float:
        """Area under the risk-coverage curve: mean selective risk over coverages (lower is better)."""
        widths = np.diff(self.coverage, prepend=0.0)
        return float(np.sum(widths * self.risk))


class SelectiveReport(BaseModel):
    """Summary of answers given and withheld, for reports and benchmark pages."""

    model_config = ConfigDict(frozen=True, ser_json_inf_nan="constants")
    n: int
    answered: int
    answered_rate: float
    selective_accuracy: float  # among answered; NaN when nothing was answered
    accuracy: float  # over all questions, an abstention counted as not correct
    answered_and_wrong_rate: float  # what conformal risk control bounds


def risk_coverage_curve(confidence: Any, correct: Any) -> RiskCoverage:
    """The risk-coverage curve of a confidence: one point per distinct confidence, highest first."""
    c = check_vector(confidence, "confidence")
    ok = check_flags(correct, "correct", c.shape[0])
    order = np.argsort(-c, kind="stable")
    c_sorted = c[order]
    wrong_cum = np.cumsum(~ok[order])
    group_end = np.ones(c.shape[0], dtype=bool)
    group_end[:-1] = c_sorted[1:] != c_sorted[:-1]
    answered = np.flatnonzero(group_end) + 1
    return RiskCoverage(
        threshold=c_sorted[group_end],
        coverage=answered / c.shape[0],
        risk=wrong_cum[group_end] / answered,
    )


def aurc(confidence: Any, correct: Any) -> float:
    """Area under the risk-coverage curve (Geifman et al. 2019), ties stepped over as groups."""
    return risk_coverage_curve(confidence, correct).aurc


def auarc(confidence: Any, correct: Any) -> float:
    """Area under the accuracy-rejection (accuracy-coverage) curve; equals ``1 - aurc``."""
    return 1.0 - aurc(confidence, correct)


def auroc(confidence: Any, correct: Any) -> float:
    """How well a confidence separates right from wrong answers: P(conf(right) > conf(wrong)).

    Ties count one half (the Mann-Whitney statistic). 0.5 is chance; undefined, and refused,
    when every answer is right or every answer is wrong.
    """
    c = check_vector(confidence, "confidence")
    ok = check_flags(correct, "correct", c.shape[0])
    n_right = int(ok.sum())
    n_wrong = c.shape[0] - n_right
    if n_right == 0 or n_wrong == 0:
        raise ConformalError("AUROC needs at least one right and one wrong answer")
    ranks = _average_ranks(c)
    return float((ranks[ok].sum() - n_right * (n_right + 1) / 2) / (n_right * n_wrong))


def selective_report(answers: Any, labels: Any) -> SelectiveReport:
    """Summarise answers (an option index, or -1 for an abstention) against the true options."""
    given = np.asarray(answers)
    truth = np.asarray(labels)
    if given.ndim != 1 or given.shape != truth.shape or given.shape[0] == 0:
        raise ConformalError(
            f"answers and labels must be non-empty 1-D arrays of one shape, got {given.shape}, {truth.shape}"
        )
    answered = given >= 0
    right = answered & (given == truth)
    n = given.shape[0]
    n_answered = int(answered.sum())
    return SelectiveReport(
        n=n,
        answered=n_answered,
        answered_rate=n_answered / n,
        selective_accuracy=float(right.sum() / n_answered) if n_answered else float("nan"),
        accuracy=float(right.sum() / n),
        answered_and_wrong_rate=float((answered & ~right).sum() / n),
    )


def _average_ranks(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1-based ranks, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    return mean_rank[inverse]
