"""Pixels deeper than 8 bits, made 8-bit by their real range, the way image viewers for microscopy and
medical scans show them.

The rule (``to_uint8``):
- ``uint8`` stays as it is; ``bool`` becomes 0 / 255;
- 16-bit images (``uint16``, ``int16``, PIL's ``I;16`` modes) and any integer array with values outside
  0..255 are stretched linearly from their minimum to their maximum onto 0..255 (a 12-bit camera image
  with values 100..4000 fills the range; before, everything above 255 was clipped, and a 16-bit PNG became
  an all-white image that still got a confident answer);
- other integer arrays whose values lie in 0..255 (numpy's default ``int64`` after arithmetic) stay;
- floats in 0..1 are scaled by 255; other non-negative floats by 255 / their maximum (zero stays black;
  before, one pixel at 1.02 turned a 0..1 image's mid-greys black); floats with negative values (a
  standardised array) are stretched from minimum to maximum;
- a stretched image with a single value has no range to show: it becomes mid-grey, with a warning.
"""

from __future__ import annotations

import logging

import numpy as np

from foveate.errors import ImageLoadError

__all__ = ["to_uint8"]

log = logging.getLogger(__name__)

_ALWAYS_STRETCHED = (np.uint16, np.int16)


def to_uint8(arr: np.ndarray, source: str) -> np.ndarray:
    """``arr`` as ``uint8`` by the rule above; ``source`` names the image in errors and warnings."""
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageLoadError(f"image from {source} holds NaN or infinite values")
        low, high = float(arr.min()), float(arr.max())  # never empty: sizes are checked first
        if low >= 0.0 and high <= 1.0:
            return np.round(arr * 255.0).astype(np.uint8)
        return _stretch(arr.astype(np.float64), min(low, 0.0), high, source)
    if np.issubdtype(arr.dtype, np.integer):
        low, high = int(arr.min()), int(arr.max())
        if arr.dtype.type not in _ALWAYS_STRETCHED and low >= 0 and high <= 255:
            return arr.astype(np.uint8)
        return _stretch(arr.astype(np.float64), float(low), float(high), source)
    raise ImageLoadError(f"image from {source} has unsupported pixel type {arr.dtype}")


def _stretch(arr: np.ndarray, low: float, high: float, source: str) -> np.ndarray:
    if high <= low:
        log.warning("image from %s has a single value (%g): shown as mid-grey", source, low)
        return np.full(arr.shape, 128, dtype=np.uint8)
    return np.round((arr - low) * (255.0 / (high - low))).astype(np.uint8)
