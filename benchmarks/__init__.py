"""Benchmarks: each writes a table under docs/benchmarks/ (never timed in tests)."""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Sequence
from pathlib import Path

from foveate.synthetic import World, worlds_named

DEFAULT_WORLDS = "plain,hard"
"""What ``--worlds`` defaults to: every benchmark page reports the plain and the harder world."""


def add_worlds_option(parser: argparse.ArgumentParser) -> None:
    """Give ``parser`` the ``--worlds`` option every page has: ``args.worlds`` is then the list of ``World``s
    it names (default ``DEFAULT_WORLDS``), and a name it does not know, an empty list or a repeated name is a
    usage error that names it, before any model is loaded."""
    parser.add_argument(
        "--worlds", type=_worlds, default=DEFAULT_WORLDS, help="comma-separated worlds (plain, hard)"
    )


def _worlds(text: str) -> list[World]:
    try:
        return worlds_named(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
