"""``foveate eval FORMAT PATH``: a benchmark in its published format, the direct baseline beside each
strategy or workflow, under a fixed protocol printed at the top of the report.

Writes ``--out``: ``results.jsonl`` (one line per question and entry), ``report.md``, ``protocol.json`` and
``accuracy_vs_tokens.png``. ``--resume`` continues a killed run (the questions already written are skipped);
without it an existing results file is refused rather than overwritten.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from foveate.cli.common import (
    ConcurrencyOpt,
    EndpointOpt,
    FamilyOpt,
    ModelOpt,
    RetriesOpt,
    TimeoutOpt,
    TotalCapOpt,
    VisualCapOpt,
    console,
    fail,
    load_model,
    settings_from,
)
from foveate.errors import FoveateError

__all__ = ["eval_command"]


def eval_command(
    fmt: Annotated[str, typer.Argument(metavar="FORMAT", help="vstar, hrbench, mme-realworld or jsonl.")],
    path: Annotated[
        Path, typer.Argument(help="The benchmark's folder or file, as its authors distribute it.")
    ],
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            "--strategy",
            "-s",
            help="A zoom strategy to compare (fast, zoomeye, ...); repeatable [default: none: the direct "
            "baseline only].",
        ),
    ] = None,
    workflow: Annotated[
        list[str] | None,
        typer.Option(
            "--workflow",
            "-w",
            help="A workflow to compare (built-in name or YAML); repeatable [default: none: the direct "
            "baseline only].",
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for results.jsonl, report.md and the plot.")
    ] = Path("foveate-eval"),
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Only N questions, taken from each split in turn [default: all]."
        ),
    ] = None,
    concurrency: ConcurrencyOpt = 1,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the results already in --out [default: off].")
    ] = False,
    options: Annotated[
        str | None,
        typer.Option(
            "--options",
            help="How options are asked: texts (scored as texts) or letters (listed as (A) text, letters "
            "scored) [default: letters against a server, which scores first tokens only; else texts].",
        ),
    ] = None,
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    family: FamilyOpt = None,
    timeout: TimeoutOpt = None,
    retries: RetriesOpt = None,
    max_total_tokens: TotalCapOpt = None,
    max_visual_tokens: VisualCapOpt = None,
) -> None:
    """Evaluate on V* Bench, HR-Bench, MME-RealWorld or your JSONL, with the direct baseline always beside."""
    from foveate.cli.progress import question_progress
    from foveate.evaluation.datasets import load_benchmark
    from foveate.evaluation.eval_folder import results_folder, run_eval
    from foveate.evaluation.evaluate import eval_entries

    words = ["foveate", "eval", fmt, str(path)]
    words += [f"--strategy={s}" for s in strategy or []] + [f"--workflow={w}" for w in workflow or []]
    words += [f"--out={out}"] + ([f"--limit={limit}"] if limit else []) + [f"--concurrency={concurrency}"]
    words += [f"--model={model}"] if model else []
    words += [f"--endpoint={endpoint}"] if endpoint else []
    if options not in (None, "texts", "letters"):
        raise fail(f"--options is texts or letters, not {options!r}")
    words += [f"--options={options}"] if options else []
    try:
        entries = eval_entries(workflow or [], strategy or [])
        settings = settings_from(
            model=model,
            endpoint=endpoint,
            family=family,
            server_timeout=timeout,
            server_retries=retries,
            max_total_tokens=max_total_tokens,
            max_visual_tokens=max_visual_tokens,
        )
        questions = load_benchmark(
            fmt,
            path,
            images_dir=results_folder(out) / "images",
            limit=limit,
            max_options=settings.max_options,
        )
        vlm = load_model(settings)
        with question_progress() as bar:
            tasks: dict[str, object] = {}

            def progress(label: str, done: int, total: int) -> None:
                if label not in tasks:
                    tasks[label] = bar.add_task(label, total=total, completed=done)
                bar.update(tasks[label], completed=done)  # type: ignore[arg-type]

            outcome = run_eval(
                questions,
                settings,
                entries,
                out,
                fmt=fmt,
                source=str(path),
                vlm=vlm,
                limit=limit,
                options=options,  # type: ignore[arg-type]
                concurrency=concurrency,
                resume=resume,
                command=shlex.join(words),
                progress=progress,
            )
    except FoveateError as exc:
        raise fail(exc) from None
    console.print(outcome.report, markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"wrote {outcome.results}, {out / 'report.md'} and {outcome.plot}", highlight=False, soft_wrap=True
    )
