"""Benchmarks: each writes a table under docs/benchmarks/ (never timed in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def write_page(out: Path, lines: Sequence[str]) -> None:
    """Write a benchmark page (creating its folder) and print it, so a run's log holds the numbers too."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
