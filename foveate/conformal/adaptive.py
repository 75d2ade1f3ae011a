"""Adaptive conformal inference for the answer-or-abstain threshold, for streams that drift.

A threshold from ``crc_threshold`` keeps ``P(answered and wrong) <= alpha`` only while new
questions look like the calibration questions. When they stop doing so (a harder image
source, a model update), the same threshold answers too much and the wrong-answer rate
climbs. Adaptive conformal inference (ACI; Gibbs and Candès, "Adaptive conformal inference
under distribution shift", NeurIPS 2021) keeps the calibration set and moves the *level* at
which it is read instead. With ``err_t = 1[question t was answered and wrong]``:

    alpha_{t+1} = alpha_t + gamma * (alpha - err_t),  alpha_1 = alpha

and question ``t`` is answered when its confidence exceeds the conformal-risk-control
threshold computed on the calibration data at level ``alpha_t``. A wrong answer lowers the
level by ``gamma * (1 - alpha)`` (stricter); anything else raises it by ``gamma * alpha``. A
level at or below 0 answers nothing (threshold ``+inf``), one at or above 1 answers
everything (``-inf``): the paper's convention that ``alpha_t <= 0`` gives the full
prediction set and ``alpha_t >= 1`` the empty one.

**What is guaranteed.** The paper's Lemma 4.1 and Proposition 4.1: ``alpha_t`` stays in
``[-gamma, 1 + gamma]`` and, with probability one, for every ``T``,

    | (1/T) sum_{t<=T} err_t - alpha | <= (max(alpha_1, 1 - alpha_1) + gamma) / (gamma T),

whatever the data, with no exchangeability assumed: the long-run fraction of answered-and-
wrong questions converges to ``alpha``. The argument is a telescoping sum,
``alpha_{T+1} = alpha_1 + gamma * sum(alpha - err_t)``, plus the bounds on ``alpha_t``. Here the
lower bound holds as in the paper (at ``alpha_t <= 0`` nothing is answered, so ``err_t = 0``
and the level rises again), which gives the half that matters for a wrong-answer budget:

    (1/T) sum_{t<=T} err_t <= alpha + (alpha_1 + gamma) / (gamma T)      for every T,

deterministically (``max_error_rate``). The other half (the rate is not far *below* alpha)
needs the paper's "an empty set always misses", and answering everything is not always
wrong: a model that is right often enough may stay below ``alpha`` for ever, which is no
harm. Without that half, ``alpha_t`` could also climb without limit through a good spell and
then take as long to come down after a shift; so ``alpha_t`` is held at or below the smallest
level whose threshold already answers everything (``ceiling``, at least ``alpha``). Above it
every decision is the same, and the cap only lowers ``alpha_t``, which keeps the bound above
(the telescoping sum loses a non-negative term).

**What is not guaranteed.** Nothing per question, and nothing over a short stretch: the
bound is on the average since the first update and shrinks like ``1 / (gamma T)``; right
after a shift the rate exceeds ``alpha`` until ``alpha_t`` has come down (``recovery_time``
measures this). Under exchangeability the fixed CRC threshold's expectation guarantee is
the better one; ACI trades it for a guarantee that survives drift. The bound assumes every
update reports what the threshold actually decided (``update`` after ``answer``).

**Step size.** ``gamma = 0.005`` is the value the paper uses in its experiments. Larger steps
follow a shift faster but make ``alpha_t``, hence the threshold, oscillate more; smaller ones
are steadier and slower (the paper discusses this trade-off and later work by the same
authors adapts gamma online).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from foveate.conformal.checks import check_alpha, check_flags, check_vector
from foveate.conformal.risk_control import _wrong_above
from foveate.errors import ConformalError

#: The step size of Gibbs and Candès' experiments.
DEFAULT_GAMMA = 0.005

#: ``crc_threshold``'s allowance for binary rounding in ``W + 1 <= alpha (n + 1)``; the
#: threshold here must be the one ``crc_threshold`` returns at the same level, to the bit.
_CRC_ROUNDING = 1e-12


class AdaptiveThreshold:
    """An answer-or-abstain threshold that follows drift by adaptive conformal inference.

    Built from calibration ``confidence`` (larger means "more likely right") and ``correct``
    flags, the target ``alpha`` on the answered-and-wrong rate and the step size ``gamma``.
    For each question: ``answer(confidence)``, then, once the outcome is known,
    ``update(answered, correct)``. ``threshold`` equals ``crc_threshold(confidence, correct,
    alpha_t).threshold`` (``+inf`` at ``alpha_t <= 0``, ``-inf`` at ``alpha_t >= 1``), found by a
    binary search over the calibration data sorted once here. See the module docstring for the
    guarantee. Holds its state in the object and is not thread-safe: one stream, one caller.
    """

    def __init__(self, confidence: Any, correct: Any, alpha: float, *, gamma: float = DEFAULT_GAMMA) -> None:
        c = check_vector(confidence, "confidence")
        ok = check_flags(correct, "correct", c.shape[0])
        self.alpha = check_alpha(alpha)
        self.gamma = _check_gamma(gamma)
        self.n = int(c.shape[0])
        values, wrong_above = _wrong_above(c, ~ok)
        self._values = values
        # crc_threshold takes the first candidate with wrong_above + 1 <= budget; wrong_above never
        # increases along the candidates, so its negation is sorted and searchsorted finds that one
        self._neg_need = -(wrong_above + 1.0)
        wrong = float(wrong_above[0])
        # smallest level whose threshold is -inf (answers everything); at least alpha
        everything = (wrong + 1.0) / ((self.n + 1) * (1 + _CRC_ROUNDING))
        self.ceiling = max(self.alpha, min(everything, 1.0))
        while self.threshold_at(self.ceiling) != -math.inf:  # guard the division's rounding
            self.ceiling = math.nextafter(self.ceiling, math.inf)
        self._alpha_t = self.alpha
        self._steps = 0
        self._errors = 0

    @property
    def alpha_t(self) -> float:
        """The level the calibration data is read at for the next question (starts at ``alpha``)."""
        return self._alpha_t

    @property
    def steps(self) -> int:
        """Updates so far."""
        return self._steps

    @property
    def errors(self) -> int:
        """Answered-and-wrong questions so far."""
        return self._errors

    @property
    def error_rate(self) -> float:
        """Answered-and-wrong questions over all updates (NaN before the first)."""
        return self._errors / self._steps if self._steps else math.nan

    @property
    def max_error_rate(self) -> float:
        """The guaranteed ceiling on ``error_rate`` now: ``alpha + (alpha + gamma) / (gamma * steps)``."""
        if self._steps == 0:
            return math.inf
        return self.alpha + (self.alpha + self.gamma) / (self.gamma * self._steps)

    @property
    def threshold(self) -> float:
        """Answer when confidence is strictly above this (CRC on the calibration data at ``alpha_t``)."""
        return self.threshold_at(self._alpha_t)

    def threshold_at(self, level: float) -> float:
        """The CRC threshold at any level; ``+inf`` at or below 0, ``-inf`` at or above 1."""
        if level <= 0.0:
            return math.inf
        if level >= 1.0:
            return -math.inf
        budget = level * (self.n + 1) * (1 + _CRC_ROUNDING)
        first = int(np.searchsorted(self._neg_need, -budget, side="left"))
        return math.inf if first == self._values.shape[0] else float(self._values[first])

    def answer(self, confidence: float) -> bool:
        """Whether a question with this confidence is answered now."""
        try:
            value = float(confidence)
        except (TypeError, ValueError):
            raise ConformalError(f"confidence must be a number, got {confidence!r}") from None
        if not math.isfinite(value):
            raise ConformalError(f"confidence must be finite, got {confidence!r}")
        return value > self.threshold

    def update(self, answered: bool, correct: bool) -> float:
        """Record one question's outcome and return the new ``alpha_t``.

        ``answered`` is what the gate did; ``correct`` whether the answer it would give is right
        (ignored when it abstained: an abstention is never an error).
        """
        return self.step(_check_flag(answered, "answered") and not _check_flag(correct, "correct"))

    def step(self, error: bool) -> float:
        """One ACI step from the error indicator alone (answered and wrong); returns ``alpha_t``."""
        err = _check_flag(error, "error")
        moved = self._alpha_t + self.gamma * (self.alpha - (1.0 if err else 0.0))
        self._alpha_t = min(moved, self.ceiling)
        self._steps += 1
        self._errors += int(err)
        return self._alpha_t

    def __repr__(self) -> str:
        return (
            f"AdaptiveThreshold(alpha={self.alpha:g}, gamma={self.gamma:g}, n={self.n}, "
            f"alpha_t={self._alpha_t:.4g}, threshold={self.threshold:.4g}, steps={self._steps})"
        )


def running_rate(errors: Any, window: int) -> npt.NDArray[np.float64]:
    """Trailing-window mean of a 0/1 stream: entry ``t`` is the mean of ``errors[t - window + 1 : t + 1]``.

    The first ``window - 1`` entries, which have no full window behind them, are NaN.
    """
    e = check_flags(errors, "errors")
    size = _check_count(window, "window")
    counts = np.concatenate(([0], np.cumsum(e, dtype=np.int64)))
    rate = np.full(e.shape[0], math.nan)
    if size <= e.shape[0]:
        rate[size - 1 :] = (counts[size:] - counts[:-size]) / size
    return rate


def recovery_time(
    errors: Any,
    alpha: float,
    *,
    start: int,
    window: int,
    tolerance: float = 0.0,
) -> int | None:
    """Questions after a change until the trailing error rate is back within ``alpha + tolerance``.

    ``errors`` is the 0/1 stream of answered-and-wrong indicators and ``start`` the index of
    the first question after the change. Only windows lying wholly at or after ``start`` count:
    the answer is ``t - start + 1`` for the first ``t >= start + window - 1`` whose trailing
    ``window`` questions have a mean at most ``alpha + tolerance``, so at least ``window``; None
    if there is no such ``t`` (including when fewer than ``window`` questions follow ``start``).
    """
    e = check_flags(errors, "errors")
    level = check_alpha(alpha)
    size = _check_count(window, "window")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise ConformalError(f"start must be an integer index into errors, got {start!r}")
    if not 0 <= start < e.shape[0]:
        raise ConformalError(f"start must lie in [0, {e.shape[0]}) (an index into errors), got {start}")
    try:
        slack = float(tolerance)
    except (TypeError, ValueError):
        raise ConformalError(f"tolerance must be a number, got {tolerance!r}") from None
    if not (slack >= 0.0 and math.isfinite(slack)):
        raise ConformalError(f"tolerance must be finite and non-negative, got {tolerance!r}")
    after = running_rate(e[start:], size)[size - 1 :]
    within = np.flatnonzero(after <= level + slack)
    return int(within[0]) + size if within.size else None


def _check_gamma(gamma: float) -> float:
    try:
        value = float(gamma)
    except (TypeError, ValueError):
        raise ConformalError(f"gamma must be a positive number, got {gamma!r}") from None
    if not (value > 0.0 and math.isfinite(value)):
        raise ConformalError(f"gamma must be finite and greater than 0, got {gamma!r}")
    return value


def _check_count(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConformalError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_flag(value: Any, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise ConformalError(f"{name} must be a boolean, got {value!r}")
