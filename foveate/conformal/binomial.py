"""Binomial tail probabilities and the Hoeffding-Bentkus p-value, in plain numpy.

Learn then Test and the drift monitor need exact binomial lower tails. scipy is not a
dependency of foveate, so the CDF is summed here in log space: each term's log-probability
comes from ``math.lgamma`` (exact log-factorials, no overflow for any n), and the terms are
added with a log-sum-exp so that tails of 1e-300 are still right instead of rounding to 0.
Terms too small to matter are skipped, so the monitor can test after every feedback.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from foveate.errors import ConformalError


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(Binomial(n, p) <= k), accurate in the far tails."""
    if n < 0 or int(n) != n:
        raise ConformalError(f"binomial n must be a whole number >= 0, got {n!r}")
    if not 0.0 <= p <= 1.0:
        raise ConformalError(f"binomial p must lie in [0, 1], got {p!r}")
    k = math.floor(k)
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p == 0.0:
        return 1.0
    if p == 1.0:
        return 0.0
    # Terms more than ~40 standard deviations from the mean are below e^-800 of the largest:
    # skip them, so a tail costs O(sqrt(n)) terms instead of O(n).
    mean = n * p
    spread = 40.0 * math.sqrt(n * p * (1.0 - p)) + 10.0
    if k >= mean + spread:
        return 1.0
    start = max(0, math.floor(min(k, mean) - spread))
    j = np.arange(start, k + 1, dtype=np.float64)
    log_choose = math.lgamma(n + 1) - _log_gamma(j + 1) - _log_gamma(n - j + 1)
    log_terms = log_choose + j * math.log(p) + (n - j) * math.log1p(-p)
    top = float(log_terms.max())
    return min(1.0, math.exp(top) * float(np.exp(log_terms - top).sum()))


def hoeffding_pvalue(risk_hat: float, n: int, alpha: float) -> float:
    """p-value of "true risk > alpha" from the mean of n losses in [0, 1] (Hoeffding, KL form).

    ``exp(-n * kl(min(risk_hat, alpha), alpha))`` with ``kl`` the Bernoulli relative entropy,
    as in Learn then Test (Angelopoulos et al. 2021), Proposition 3.
    """
    if n == 0:
        return 1.0
    a = min(risk_hat, alpha)
    return math.exp(-n * _bernoulli_kl(a, alpha))


def bentkus_pvalue(risk_hat: float, n: int, alpha: float) -> float:
    """p-value of "true risk > alpha": ``e * P(Binomial(n, alpha) <= ceil(n * risk_hat))``.

    Bentkus' inequality holds for any losses in [0, 1], at the price of the factor e.
    """
    if n == 0:
        return 1.0
    # round away float fuzz before the ceiling: 0.3 * 10 is 3.0000000000000004
    errors = math.ceil(round(n * risk_hat, 9))
    return min(1.0, math.e * binomial_cdf(errors, n, alpha))


def hoeffding_bentkus_pvalue(risk_hat: float, n: int, alpha: float) -> float:
    """The smaller of the Hoeffding and Bentkus p-values; valid because both are."""
    if not 0.0 <= risk_hat <= 1.0:
        raise ConformalError(f"empirical risk must lie in [0, 1], got {risk_hat!r}")
    return min(hoeffding_pvalue(risk_hat, n, alpha), bentkus_pvalue(risk_hat, n, alpha))


def _bernoulli_kl(a: float, b: float) -> float:
    """KL(Bernoulli(a) || Bernoulli(b)) with 0 log 0 = 0."""
    total = 0.0
    if a > 0.0:
        total += a * math.log(a / b)
    if a < 1.0:
        total += (1.0 - a) * math.log((1.0 - a) / (1.0 - b))
    return total


_lgamma_ufunc = np.frompyfunc(math.lgamma, 1, 1)


def _log_gamma(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``math.lgamma`` over an array (numpy has no log-gamma of its own)."""
    return np.asarray(_lgamma_ufunc(x), dtype=np.float64)
