"""Input checks shared by the conformal modules.

Conformal guarantees are only as good as their inputs: a probability row that sums to 0.7
(a backend that forgot to renormalise over the options) silently shifts every score, and a
label out of range silently scores the wrong option. So every public entry point checks once,
here, and raises ``ConformalError`` naming the argument, instead of repairing the data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from foveate.errors import ConformalError

#: Where randomness comes from: a Generator, a seed, or None for fresh unseeded numbers.
RandomSource = np.random.Generator | int | None

#: How far a probability row may be from summing to one. Option probabilities from a softmax
#: in float32 sum to one within ~1e-6; anything further off is a caller bug, not rounding.
SUM_TOLERANCE = 1e-4


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """An error level strictly between 0 and 1 (0 and 1 give trivial, useless guarantees)."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ConformalError(f"{name} must be a number in (0, 1), got {alpha!r}") from None
    if not (0.0 < value < 1.0) or math.isnan(value):
        raise ConformalError(f"{name} must lie strictly between 0 and 1, got {alpha!r}")
    return value


def check_probabilities(probs: Any, name: str = "probs") -> npt.NDArray[np.float64]:
    """An (n, K) matrix of option probabilities: finite, non-negative, rows summing to one."""
    array = np.asarray(probs, dtype=np.float64)
    if array.ndim != 2:
        raise ConformalError(f"{name} must be a 2-D (questions, options) matrix, got shape {array.shape}")
    n, k = array.shape
    if n == 0:
        raise ConformalError(f"{name} is empty: it has no questions (shape {array.shape})")
    if k < 2:
        raise ConformalError(f"{name} needs at least 2 options per question, got {k}")
    if not np.all(np.isfinite(array)):
        row = int(np.argwhere(~np.isfinite(array))[0, 0])
        raise ConformalError(f"{name} has a non-finite value in row {row}")
    if np.any(array < 0):
        row = int(np.argwhere(array < 0)[0, 0])
        raise ConformalError(f"{name} has a negative probability in row {row}")
    sums = array.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if np.any(off):
        row = int(np.argmax(off))
        raise ConformalError(
            f"{name} row {row} sums to {sums[row]:.6g}, not 1: pass probabilities normalised over "
            f"the options (e.g. ScoreResult.probabilities)"
        )
    return array


def check_labels(labels: Any, n: int, n_options: int, name: str = "labels") -> npt.NDArray[np.intp]:
    """One integer option index in [0, K) per question."""
    array = np.asarray(labels)
    if array.ndim != 1 or array.shape[0] != n:
        raise ConformalError(f"{name} must have shape ({n},), one per question, got {array.shape}")
    if array.dtype.kind not in "iu":
        if array.dtype.kind == "f" and np.all(np.isfinite(array)) and np.all(array == np.round(array)):
            array = array.astype(np.intp)
        else:
            raise ConformalError(f"{name} must be integer option indices, got dtype {array.dtype}")
    if np.any(array < 0) or np.any(array >= n_options):
        bad = int(array[(array < 0) | (array >= n_options)][0])
        raise ConformalError(f"{name} has option index {bad}, outside [0, {n_options})")
    return array.astype(np.intp)


def check_vector(values: Any, name: str, n: int | None = None) -> npt.NDArray[np.float64]:
    """A non-empty 1-D vector of finite floats (confidences, scores), of length ``n`` if given."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ConformalError(f"{name} must be 1-D, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ConformalError(f"{name} is empty")
    if n is not None and array.shape[0] != n:
        raise ConformalError(f"{name} must have {n} entries, got {array.shape[0]}")
    if not np.all(np.isfinite(array)):
        raise ConformalError(f"{name} has a non-finite value at index {int(np.argmax(~np.isfinite(array)))}")
    return array


def check_flags(values: Any, name: str, n: int | None = None) -> npt.NDArray[np.bool_]:
    """A non-empty 1-D vector of booleans (correct?, covered?, answered?)."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ConformalError(f"{name} must be 1-D, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ConformalError(f"{name} is empty")
    if n is not None and array.shape[0] != n:
        raise ConformalError(f"{name} must have {n} entries, got {array.shape[0]}")
    if array.dtype != np.bool_:
        if not np.all((array == 0) | (array == 1)):
            raise ConformalError(f"{name} must be booleans (or 0/1), got values other than 0 and 1")
        array = array.astype(np.bool_)
    return array


def check_rng(rng: RandomSource) -> np.random.Generator:
    """A numpy ``Generator`` from a seed, a generator, or ``None`` (fresh, unseeded)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise ConformalError(f"rng must be a numpy Generator, an int seed or None, got {type(rng).__name__}")
