"""``foveate bench``: write the synthetic benchmark, measure the embedded tiny VLM on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foveate.cli.common import ModelOpt, console, fail
from foveate.errors import FoveateError

__all__ = ["bench_app"]

bench_app = typer.Typer(
    rich_markup_mode=None, help="Synthetic benchmarks and measurements.", no_args_is_help=True
)


@bench_app.command("make")
def bench_make(
    out: Annotated[Path, typer.Option("--out", help="Folder to write images/ and manifest.jsonl to.")],
    n: Annotated[int, typer.Option("--n", min=1, max=1_000_000, help="Number of scenes.")] = 200,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Benchmark seed.")] = 1,
    world: Annotated[
        str,
        typer.Option(
            "--world",
            help="plain (targets are the only saturated objects) or hard (saturated distractors, "
            "photograph or texture backgrounds; needs scikit-image's bundled photographs).",
        ),
    ] = "plain",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="manifest (foveate's own), or a published benchmark's layout for foveate eval: vstar, "
            "hrbench, mme-realworld, jsonl.",
        ),
    ] = "manifest",
) -> None:
    """Write a synthetic high-resolution benchmark: PNG scenes plus a JSONL manifest, or the same scenes in
    V* Bench, HR-Bench, MME-RealWorld-Lite or question-file layout (to try foveate eval offline)."""
    from foveate.synthetic import make_benchmark, world_named
    from foveate.synthetic.formats import write_format

    try:
        if fmt == "manifest":
            items = make_benchmark(out, n=n, seed=seed, world=world_named(world))
            console.print(f"wrote {len(items)} scenes to {out} (manifest: {out / 'manifest.jsonl'})")
            return
        path = write_format(fmt, out, n, seed=seed, world=world_named(world))
    except (FoveateError, OSError, ValueError, ImportError) as exc:
        raise fail(exc) from None
    console.print(f"wrote {n} scenes as {fmt}: foveate eval {fmt} {path}", highlight=False, soft_wrap=True)


FIXTURE_SEEDS = "17,27,37"
"""``foveate.evaluation.fixture.EVAL_SEEDS`` as ``--seeds`` text: written out because that module loads
transformers, which the CLI imports only when a command needs it (tests/test_cli.py checks they agree)."""


@bench_app.command("fixture")
def bench_fixture(
    out: Annotated[Path, typer.Option("--out", help="Markdown report to write.")] = Path(
        "docs/benchmarks/fixture.md"
    ),
    n: Annotated[int, typer.Option("--n", min=1, help="Held-out scenes to measure on.")] = 300,
    seeds: Annotated[
        str,
        typer.Option(
            "--seeds",
            help="Comma-separated held-out scene seeds (training uses 1000, 1001, 2000 and 3000-9001; "
            "7 chose among trained candidates).",
        ),
    ] = FIXTURE_SEEDS,
    model: ModelOpt = None,
    worlds: Annotated[
        str, typer.Option("--worlds", help="Comma-separated worlds to measure in (plain, hard).")
    ] = "plain,hard",
) -> None:
    """Measure the embedded tiny VLM in each world: crop vs whole-image accuracy, existence AUROC, by size."""
    from foveate.evaluation.fixture import write_fixture_report
    from foveate.synthetic import worlds_named
    from foveate.tiny_vlm import default_model_path

    command = f"foveate bench fixture --n {n}" + (f" --model {model}" if model else "")
    if seeds != FIXTURE_SEEDS:
        command += f" --seeds {seeds}"
    if worlds != "plain,hard":
        command += f" --worlds {worlds}"
    try:
        seed_list = _seed_list(seeds)
        try:
            chosen = worlds_named(worlds)
        except ValueError as exc:
            raise ValueError(f"--worlds: {exc}") from None
        write_fixture_report(
            Path(model) if model else default_model_path(), out, n, seed_list, command, chosen
        )
    except (FoveateError, ValueError, ImportError) as exc:
        raise fail(exc) from None
    console.print(out.read_text())


def _seed_list(text: str) -> list[int]:
    """The seeds a comma-separated ``--seeds`` names: each a non-negative integer, none twice."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or not all(name.isdigit() for name in names):
        raise ValueError(f"--seeds {text!r}: give comma-separated non-negative integers, e.g. 17,27,37")
    seeds = [int(name) for name in names]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"--seeds {text!r} names a seed twice")
    return seeds
