"""Benchmarks: each writes a table under docs/benchmarks/ (never timed in tests)."""

from __future__ import annotations

import hashlib
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


def weights_sha256(model: Path) -> str:
    """The sha256 of the model folder's ``model.safetensors``: which weights made a cache."""
    path = model / "model.safetensors"
    if not path.is_file():
        raise SystemExit(f"a cache needs {path} to tell which weights made it; it is missing")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sources_sha256(files: Sequence[Path], packages: Sequence[str]) -> str:
    """The sha256 of ``files`` and of every module of the named ``foveate`` subpackages: which code made a
    cache. Each file counts by its path (relative to the project) and its bytes."""
    import foveate

    root = Path(foveate.__file__).parent
    paths = [Path(f).resolve() for f in files]
    for package in packages:
        paths += sorted((root / package).rglob("*.py"))
    digest = hashlib.sha256()
    for path in paths:
        name = path.relative_to(root.parent) if path.is_relative_to(root.parent) else Path(path.name)
        digest.update(name.as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()
