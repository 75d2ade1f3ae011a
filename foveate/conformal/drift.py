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
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from foveate.conformal.binomial import binomial_cdf
from foveate.conformal.checks import check_alpha
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


class CoverageMonitor:
    """Online coverage check for one calibrated conformal predictor; not thread-safe."""

    def __init__(
        self,
        alpha: float,
        *,
        level: float = 0.01,
        window: int | None = None,
        min_feedback: int = 20,
    ) -> None:
        self.alpha = check_alpha(alpha)
        self.level = check_alpha(level, "level")
        if window is not None and window < 1:
            raise ConformalError(f"window must be at least 1 feedback, got {window}")
        if min_feedback < 1:
            raise ConformalError(f"min_feedback must be at least 1, got {min_feedback}")
        self.window = window
        self.min_feedback = min_feedback
        self._recent: deque[bool] = deque()
        self._seen = 0
        self._covered = 0
        self._warned = False

    @property
    def target(self) -> float:
        return 1.0 - self.alpha

    def update(self, covered: bool | Any) -> CoverageStatus:
        """Record feedback (one bool, or an iterable of them) and return the new status.

        Logs a warning when coverage first drops significantly below target, and an info
        line when it recovers, not on every feedback in between.
        """
        values = np.atleast_1d(np.asarray(covered))
        if values.ndim != 1 or not np.all((values == 0) | (values == 1)):
            raise ConformalError("coverage feedback must be booleans: did the set contain the true option?")
        for value in values.astype(bool).tolist():
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
        return CoverageStatus(
            seen=n,
            covered=x,
            coverage=x / n,
            target=self.target,
            p_value=p_value,
            drifting=drifting,
            message=message,
        )
