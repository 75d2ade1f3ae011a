"""Benchmarks: each writes a table under docs/benchmarks/ (never timed in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from foveate.synthetic import World, world_named

DEFAULT_WORLDS = "plain,hard"
"""What ``--worlds`` defaults to: every benchmark page reports the plain and the harder world."""


def parse_worlds(text: str) -> list[World]:
    """The worlds a comma-separated ``--worlds`` value names, in order (blanks around names ignored).

    ``ValueError`` from ``world_named`` for an unknown name (it names the world and the known ones), and
    for a value that names no world or one world twice.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"--worlds {text!r} names no world")
    if len(set(names)) < len(names):
        raise ValueError(f"--worlds {text!r} names a world twice")
    return [world_named(name) for name in names]


def worlds_option(worlds: Sequence[World]) -> str:
    """The ``--worlds`` part of a page's command line: empty for the default worlds."""
    names = ",".join(world.name for world in worlds)
    return "" if names == DEFAULT_WORLDS else f" --worlds {names}"


def write_page(out: Path, lines: Sequence[str]) -> None:
    """Write a benchmark page (creating its folder) and print it, so a run's log holds the numbers too."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))
