"""Watch coverage in use, and warn when the calibration no longer holds.

The conformal guarantee assumes future questions look like the calibration questions. When
they stop doing so (new image sources, a model update, a prompt change), prediction sets
quietly stop covering the truth. Whenever feedback tells us the true option, we learn one
bit: did the set contain it? ``CoverageMonitor`` collects those bits and tests whether
coverage has fallen below ``1 - alpha``.

The test is an exact one-sided binomial test: with ``x`` sets covering the truth out of
``n`` (over the whole stream, or the last ``window`` feedbacks), the p-value of "coverage is
still at least 1 - alpha" is ``P(Binomial(n, 1 - alpha) <= x)``; a p-value at or below
``level`` raises a warning. This is exact at every n, unlike a normal approximation, and
sharper than a Hoeffding bound. Two caveats, both pushing towards more warnings than
``level`` suggests: testing after every feedback is repeated testing, so over a long stream
a false alarm becomes likely (use a small ``level`` and a ``window``); and coverage given one
calibration set scatters around ``1 - alpha`` by about ``sqrt(alpha / n_cal)``, so a
legitimately calibrated set can sit slightly below target and be flagged once ``n`` is large.

For the selective (answer-or-abstain) gate, "covered" means "not answered and wrong", and
the monitor can do more than warn: given an ``AdaptiveThreshold`` (``adapt``), it switches
that threshold on when it first detects drift and feeds it every later feedback, so the
gate can follow the drift (adaptive conformal inference) until someone recalibrates.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from foveate.conformal.adaptive import AdaptiveThreshold
from foveate.conformal.binomial import binomial_cdf
from foveate.conformal.checks import check_alpha, check_flags
from foveate.errors import ConformalError

logger = logging.getLogger(__name__)


class CoverageStatus(BaseModel):
    """Where monitored coverage stands after the latest feedback."""

    model_config = ConfigDict(frozen=True)
    seen: int  # feedbacks in the window (or in all, without a window)
    covered: int
    coverage: float  # NaN before the first feedback
    target: float
    p_value: float
    drifting: bool
    message: str
    adapting: bool = False
    """Whether the monitor's adaptive threshold is on (it switches on at the first drift and stays on)."""


class CoverageMonitor:
    """Online coverage check for one calibrated conformal predictor; not thread-safe.

    With ``adapt`` (an ``AdaptiveThreshold`` for the selective gate, at the same ``alpha``), the
    first detected drift also switches that threshold on (``adapting``, logged with the
    feedback count); from then on every feedback steps it as well, and ``threshold`` is the
    threshold the gate should use. Feed such a monitor ``update_selective(answered, correct)``,
    or ``update(covered)`` with ``covered = not (answered and wrong)``. Drift is checked once per
    call, after the whole batch, so feedback in the batch that detects it does not step the
    adaptive threshold. It stays on after coverage recovers (recovery is then its doing).
    """

    def __init__(
        self,
        alpha: float,
        *,
        level: float = 0.01,
        window: int | None = None,
        min_feedback: int = 20,
        adapt: AdaptiveThreshold | None = None,
    ) -> None:
        self.alpha = check_alpha(alpha)
        self.level = check_alpha(level, "level")
        if window is not None and window < 1:
            raise ConformalError(f"window must be at least 1 feedback, got {window}")
        if min_feedback < 1:
            raise ConformalError(f"min_feedback must be at least 1, got {min_feedback}")
        if adapt is not None and adapt.alpha != self.alpha:
            raise ConformalError(
                f"adapt must target the monitor's alpha {self.alpha:g}, got an adaptive threshold at "
                f"alpha {adapt.alpha:g}"
            )
        self.window = window
        self.min_feedback = min_feedback
        self.adapt = adapt
        self.adapting = False
        self.adapting_since: int | None = None  # the feedback count at which adapt was switched on
        self.feedback = 0  # all feedbacks so far, whatever the window
        self._recent: deque[bool] = deque()
        self._seen = 0
        self._covered = 0
        self._warned = False

    @property
    def target(self) -> float:
        return 1.0 - self.alpha

    @property
    def threshold(self) -> float | None:
        """The adaptive threshold's current value while adapting (answer above it), else None."""
        return self.adapt.threshold if self.adapting and self.adapt is not None else None

    def update(self, covered: bool | Any) -> CoverageStatus:
        """Record feedback (one bool, or an iterable of them) and return the new status.

        Logs a warning when coverage first drops significantly below target, and an info
        line when it recovers, not on every feedback in between. While adapting, each
        uncovered feedback counts as an answered-and-wrong question for the adaptive threshold.
        """
        values = np.atleast_1d(np.asarray(covered))
        if values.ndim != 1 or not np.all((values == 0) | (values == 1)):
            raise ConformalError("coverage feedback must be booleans: did the set contain the true option?")
        return self._record(values.astype(bool).tolist())

    def update_selective(self, answered: bool | Any, correct: bool | Any) -> CoverageStatus:
        """Record selective-gate feedback (one question, or equal-length iterables of them).

        ``covered`` is ``not (answered and not correct)``; while adapting, the adaptive threshold
        is updated with the same ``answered`` and ``correct``.
        """
        asked = check_flags(np.atleast_1d(np.asarray(answered)), "answered")
        right = check_flags(np.atleast_1d(np.asarray(correct)), "correct", asked.shape[0])
        return self._record((~(asked & ~right)).tolist())

    def _record(self, values: list[bool]) -> CoverageStatus:
        adapt = self.adapt if self.adapting else None
        for value in values:
            self.feedback += 1
            if adapt is not None:
                adapt.step(not value)  # the ACI error is exactly "answered and wrong", i.e. not covered
            if self.window is None:
                self._seen += 1  # all-time counts; nothing to remember
            else:
                if len(self._recent) == self.window:
                    self._covered -= self._recent.popleft()
                else:
                    self._seen += 1
                self._recent.append(value)
            self._covered += value
        current = self.status()
        if current.drifting and not self._warned:
            if self.adapt is not None and not self.adapting:
                self.adapting = True
                self.adapting_since = self.feedback
                current = self.status()
            logger.warning("%s", current.message)
        elif self._warned and not current.drifting:
            logger.info("%s", current.message)
        self._warned = current.drifting
        return current

    def status(self) -> CoverageStatus:
        n, x = self._seen, self._covered
        if n == 0:
            return CoverageStatus(
                seen=0,
                covered=0,
                coverage=float("nan"),
                target=self.target,
                p_value=1.0,
                drifting=False,
                message="no coverage feedback yet",
            )
        p_value = binomial_cdf(x, n, self.target)
        drifting = n >= self.min_feedback and p_value <= self.level
        scope = f"last {n}" if self.window is not None else f"{n}"
        if drifting:
            message = (
                f"conformal coverage drift: sets held the true option in {x} of the {scope} questions "
                f"({x / n:.1%}), below the {self.target:.1%} target (binomial p = {p_value:.2g} <= "
                f"{self.level:g}); recalibrate on recent questions"
            )
        else:
            message = f"coverage {x / n:.1%} over the {scope} questions, target {self.target:.1%}"
        if self.adapting and self.adapt is not None:
            message += (
                f"; adaptive threshold switched on at feedback {self.adapting_since} "
                f"(alpha_t {self.adapt.alpha_t:.4f}, answer above {self.adapt.threshold:.4g})"
            )
        return CoverageStatus(
            seen=n,
            covered=x,
            coverage=x / n,
            target=self.target,
            p_value=p_value,
            drifting=drifting,
            message=message,
            adapting=self.adapting,
        )
