"""Workflow files at their limits: ``python -m benchmarks.spec_limits``.

How long and how much memory loading a workflow takes when the file is hostile or huge: a YAML alias bomb
(about 400 bytes that expand to 10^9 values) and chains of 1,000 and 10,000 nodes, validated structurally
and against the built-in node registry. Time by ``time.perf_counter``, memory by ``tracemalloc`` (Python
allocations during the load, peak). Writes ``docs/benchmarks/spec_limits.md``.
"""

from __future__ import annotations

import argparse
import functools
import platform
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from benchmarks import write_page
from foveate.errors import GraphSpecError
from foveate.graphs.nodes import builtin_registry
from foveate.graphs.registry import Registry
from foveate.graphs.spec import load_workflow


def bomb(folder: Path) -> Path:
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    path = folder / "bomb.yaml"
    path.write_text("\n".join(levels) + "\nname: bomb\nstart: x\nnodes: {}\nedges: []\n")
    return path


def chain(folder: Path, n: int) -> Path:
    lines = ["name: chain", "start: n0", "nodes:"] + [f"  n{i}: {{uses: reason}}" for i in range(n)]
    lines += ["edges:"] + [f"  - {{from: n{i}, to: n{i + 1}}}" for i in range(n - 1)]
    lines.append(f"  - {{from: n{n - 1}, to: END}}")
    path = folder / f"chain-{n}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure(load: Callable[[], object], repeats: int) -> tuple[float, float, str]:
    """Best wall seconds over ``repeats`` untraced loads, then the peak traced MB of one traced load (tracing
    slows Python down, so it is never timed), and what happened."""

    def once() -> str:
        try:
            load()
            return "validated"
        except GraphSpecError as exc:
            return f"refused: {str(exc).split(': ', 1)[1]}"

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        outcome = once()
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    once()
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return best, peak, outcome


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/spec_limits.md"))
    args = parser.parse_args(argv)
    registry = builtin_registry()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cases: list[tuple[str, Path, Registry | None]] = [("alias bomb", bomb(folder), None)]
        for n in (1_000, 10_000):
            path = chain(folder, n)
            cases += [
                (f"{n:,}-node chain, structure", path, None),
                (f"{n:,}-node chain, registry", path, registry),
            ]
        for name, path, reg in cases:
            seconds, peak, outcome = measure(functools.partial(load_workflow, path, reg), args.repeats)
            size = path.stat().st_size
            rows.append(f"| {name} | {size:,} | {seconds:.3f} | {peak:.1f} | {outcome} |")
    lines = [
        "# Workflow files at their limits",
        "",
        f"Command: `python -m benchmarks.spec_limits --repeats {args.repeats}`",
        "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}. Best of {args.repeats} loads; "
        "memory is the peak of Python allocations during one more load, traced (tracemalloc; not timed).",
        "",
        "| file | bytes | seconds | peak MB | outcome |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
