"""A small learned abstention policy whose guarantee survives the learning.

"Learning Conformal Abstention Policies" (Tayebati et al. 2025) learns when to abstain
instead of fixing one rule. This is the honest minimum of that idea: a logistic model reads
a few features of the option distribution (top probability, margin to the runner-up,
normalised entropy, and the LAC set size at a few alphas) and predicts whether the top
option is right. Its output is a confidence; the answer threshold on it is then chosen by
conformal risk control (or Learn then Test) on *other* calibration questions than the ones
the model was trained on. The trained model is a fixed function by then, so those held-out
questions and future ones are still exchangeable and the guarantee holds exactly as for a
hand-made confidence: learning can only make the policy answer more, never break the bound.

The system's answer is always the most likely option; the policy only decides whether to
give it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from foveate.conformal.checks import RandomSource, check_alpha, check_labels, check_probabilities, check_rng
from foveate.conformal.risk_control import SelectiveCalibration, crc_threshold, ltt_threshold
from foveate.conformal.split import conformal_threshold
from foveate.errors import ConformalError

FEATURE_BASE = ("max_prob", "margin", "entropy")


def option_features(probs: Any, set_thresholds: dict[float, float] | None = None) -> npt.NDArray[np.float64]:
    """(n, F) features of each question's option distribution.

    Columns: top probability, top minus second, entropy divided by log K (0 = certain, 1 =
    uniform), then for each LAC threshold given (keyed by its alpha) the set size divided by K.
    """
    p = check_probabilities(probs)
    top_two = -np.sort(-p, axis=1)[:, :2]
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    columns = [top_two[:, 0], top_two[:, 0] - top_two[:, 1], -plogp.sum(axis=1) / math.log(p.shape[1])]
    for _, threshold in sorted((set_thresholds or {}).items()):
        columns.append(((1.0 - p) <= threshold).sum(axis=1) / p.shape[1])
    return np.stack(columns, axis=1)


@dataclass
class LogisticFit:
    """Weights of a logistic model on standardised features (kept inside this module)."""

    weights: npt.NDArray[np.float64]
    bias: float
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]

    def predict(self, features: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        z = ((features - self.mean) / self.scale) @ self.weights + self.bias
        return _sigmoid(z)


def fit_logistic(
    features: npt.NDArray[np.float64],
    targets: npt.NDArray[np.bool_],
    *,
    l2: float = 1e-2,
    steps: int = 500,
    learning_rate: float = 0.5,
) -> LogisticFit:
    """Full-batch gradient descent on the L2-regularised log loss; deterministic.

    Features are standardised first, so one learning rate suits them all; the problem is
    convex, so a few hundred steps on a handful of features get close to the optimum.
    """
    mean = features.mean(axis=0)
    scale = features.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    x = (features - mean) / scale
    y = targets.astype(np.float64)
    weights = np.zeros(x.shape[1])
    bias = float(np.log((y.mean() + 1e-3) / (1 - y.mean() + 1e-3)))
    for _ in range(steps):
        error = _sigmoid(x @ weights + bias) - y
        weights -= learning_rate * (x.T @ error / x.shape[0] + l2 * weights)
        bias -= learning_rate * float(error.mean())
    return LogisticFit(weights=weights, bias=bias, mean=mean, scale=scale)


class AbstentionPolicy(BaseModel):
    """A trained policy: features -> P(top option right) -> answer when above a calibrated threshold.

    Serialisable (``model_dump_json``) so a calibration run can be stored and reloaded.
    """

    model_config = ConfigDict(frozen=True)
    set_thresholds: dict[float, float] = Field(description="LAC thresholds per alpha, for set-size features")
    weights: list[float]
    bias: float
    mean: list[float]
    scale: list[float]
    selection: SelectiveCalibration
    trained_on: int
    calibrated_on: int

    def confidence(self, probs: Any) -> npt.NDArray[np.float64]:
        """The model's probability that the top option is right, per question."""
        fit = LogisticFit(np.asarray(self.weights), self.bias, np.asarray(self.mean), np.asarray(self.scale))
        return fit.predict(option_features(probs, self.set_thresholds))

    def answers(self, probs: Any) -> npt.NDArray[np.intp]:
        """The top option where the policy answers, -1 where it abstains."""
        p = check_probabilities(probs)
        answer = self.selection.answer_mask(self.confidence(p))
        return np.where(answer, np.argmax(p, axis=1), -1)


def fit_abstention_policy(
    probs: Any,
    labels: Any,
    alpha: float,
    *,
    guarantee: Literal["crc", "ltt"] = "crc",
    delta: float = 0.1,
    train_fraction: float = 0.5,
    feature_alphas: tuple[float, ...] = (0.05, 0.1, 0.2),
    rng: RandomSource = 0,
) -> AbstentionPolicy:
    """Train on a random ``train_fraction`` of the calibration questions, calibrate on the rest.

    ``guarantee="crc"`` bounds P(answered and wrong) by alpha; ``"ltt"`` bounds the error among
    answered questions by alpha with probability ``1 - delta``.
    """
    p = check_probabilities(probs)
    y = check_labels(labels, p.shape[0], p.shape[1])
    level = check_alpha(alpha)
    fraction = check_alpha(train_fraction, "train_fraction")
    n_train = round(p.shape[0] * fraction)
    if n_train < 2 or p.shape[0] - n_train < 1:
        raise ConformalError(
            f"cannot split {p.shape[0]} calibration questions into training ({n_train}) and calibration parts"
        )
    order = check_rng(rng).permutation(p.shape[0])
    train, held = order[:n_train], order[n_train:]
    correct = np.argmax(p, axis=1) == y
    thresholds = {
        float(a): conformal_threshold(1.0 - p[train, y[train]], check_alpha(a, "feature alpha"))
        for a in feature_alphas
    }
    # an infinite threshold (too few questions for that alpha) means every option; keep JSON finite
    thresholds = {a: min(t, 1.0) for a, t in thresholds.items()}
    fit = fit_logistic(option_features(p[train], thresholds), correct[train])
    confidence = fit.predict(option_features(p[held], thresholds))
    if guarantee == "crc":
        selection = crc_threshold(confidence, correct[held], level)
    elif guarantee == "ltt":
        selection = ltt_threshold(confidence, correct[held], level, delta)
    else:
        raise ConformalError(f"guarantee must be 'crc' or 'ltt', got {guarantee!r}")
    return AbstentionPolicy(
        set_thresholds=thresholds,
        weights=fit.weights.tolist(),
        bias=fit.bias,
        mean=fit.mean.tolist(),
        scale=fit.scale.tolist(),
        selection=selection,
        trained_on=int(train.shape[0]),
        calibrated_on=int(held.shape[0]),
    )


def _sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Logistic function without overflow warnings for large |z|."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))
