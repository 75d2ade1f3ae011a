"""Conformal prediction sets and calibrated abstention for multiple-choice answers.

Pure numpy: everything here works on an (n, K) matrix of option probabilities (one row per
question, e.g. ``ScoreResult.probabilities``) and knows nothing of models.

- ``scores``: LAC, APS and RAPS nonconformity scores.
- ``split``: split conformal with the exact ``ceil((n+1)(1-alpha))``-th order statistic;
  ``calibrate`` returns a ``ConformalCalibration`` that predicts sets and stores as JSON.
- ``abstention``: answer on a singleton set, otherwise abstain (or return the set).
- ``risk_control``: a confidence threshold with a guarantee on wrong answers, by conformal
  risk control (answered-and-wrong rate) or Learn then Test (error among answered).
- ``policy``: a small learned abstention policy, calibrated on held-out questions.
- ``metrics``: risk-coverage, AURC, AUARC, AUROC, selective accuracy.
- ``drift``: an online coverage monitor that warns when calibration stops holding, and can switch on
- ``adaptive``: adaptive conformal inference (ACI), a threshold that follows a drifting stream.
- ``answer_gate``: ``AnswerGate``, the gate on every answer (options and free text, per category), keyed
  by what it was calibrated for; ``procedure`` makes one, ``records`` stores it.
"""

from __future__ import annotations

from foveate.conformal.actions import Decision, decide, singleton_answers
from foveate.conformal.adaptive import AdaptiveThreshold, recovery_time, running_rate
from foveate.conformal.binomial import binomial_cdf, hoeffding_bentkus_pvalue
from foveate.conformal.drift import CoverageMonitor, CoverageStatus
from foveate.conformal.metrics import (
    RiskCoverage,
    SelectiveReport,
    auarc,
    aurc,
    auroc,
    risk_coverage_curve,
    selective_report,
)
from foveate.conformal.policy import AbstentionPolicy, fit_abstention_policy, option_features
from foveate.conformal.risk_control import SelectiveCalibration, crc_threshold, ltt_threshold
from foveate.conformal.scores import (
    ScoreConfig,
    aps_scores,
    label_scores,
    lac_scores,
    raps_scores,
    score_matrix,
)
from foveate.conformal.split import (
    ConformalCalibration,
    calibrate,
    conformal_rank,
    conformal_threshold,
    prediction_sets,
)

__all__ = [
    "AbstentionPolicy",
    "AdaptiveThreshold",
    "ConformalCalibration",
    "CoverageMonitor",
    "CoverageStatus",
    "Decision",
    "RiskCoverage",
    "ScoreConfig",
    "SelectiveCalibration",
    "SelectiveReport",
    "aps_scores",
    "auarc",
    "aurc",
    "auroc",
    "binomial_cdf",
    "calibrate",
    "conformal_rank",
    "conformal_threshold",
    "crc_threshold",
    "decide",
    "fit_abstention_policy",
    "hoeffding_bentkus_pvalue",
    "label_scores",
    "lac_scores",
    "ltt_threshold",
    "option_features",
    "prediction_sets",
    "raps_scores",
    "recovery_time",
    "risk_coverage_curve",
    "running_rate",
    "score_matrix",
    "selective_report",
    "singleton_answers",
]
