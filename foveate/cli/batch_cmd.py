"""``foveate batch FILE.jsonl --out answers.jsonl``: your questions through a workflow, resumable.

Each line of the question file is ``{id?, image, question, options?, answer?, category?, boxes?}`` (images
relative to the file). A bad line is reported with its line number and the others are answered. Answers are
appended to ``--out`` as each finishes; ``--resume`` answers only the questions not in it yet (a killed
run loses at most the questions in flight). ``--concurrency N`` keeps N questions in flight: a local model
shares forward passes between them, a server gets N requests at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from foveate.cli.common import (
    AllowMismatchOpt,
    ConcurrencyOpt,
    EndpointOpt,
    FamilyOpt,
    ModelOpt,
    RetriesOpt,
    TimeoutOpt,
    TotalCapOpt,
    VisualCapOpt,
    console,
    err_console,
    fail,
    load_model,
    settings_from,
)
from foveate.cli.preflight import check_before_loading
from foveate.errors import FoveateError, ManifestError
from foveate.files import output_file

__all__ = ["batch"]


def batch(
    questions: Annotated[Path, typer.Argument(help="JSONL question file.")],
    out: Annotated[Path, typer.Option("--out", help="Answers file (JSONL), appended as answers come.")],
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Built-in workflow or YAML file [default: full].")
    ] = None,
    concurrency: ConcurrencyOpt = 1,
    resume: Annotated[
        bool, typer.Option("--resume", help="Answer only what --out lacks [default: off].")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="K/N: only the questions whose place in the file is K modulo N (N processes, one file) "
            "[default: none: every question].",
        ),
    ] = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            "--checkpoints",
            help="SQLite file or PostgreSQL URL for run checkpoints [default: in memory; the answers file "
            "is what a resume starts from].",
        ),
    ] = None,
    memory: Annotated[
        str | None, typer.Option("--memory", help="Insight memory database [default: none for a batch].")
    ] = None,
    no_gate: Annotated[
        bool, typer.Option("--no-gate", help="Answer without the abstention gate [default: off].")
    ] = False,
    allow_mismatch: AllowMismatchOpt = False,
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    family: FamilyOpt = None,
    timeout: TimeoutOpt = None,
    retries: RetriesOpt = None,
    max_total_tokens: TotalCapOpt = None,
    max_visual_tokens: VisualCapOpt = None,
) -> None:
    """Answer a file of questions, with a progress bar; resumable, bad lines reported and skipped."""
    from foveate.cli.progress import question_progress
    from foveate.evaluation.batch import answer_file
    from foveate.evaluation.datasets import read_question_file
    from foveate.evaluation.results_file import ResultsFile
    from foveate.evaluation.workers import AgentRecipe, Answerers

    part, parts = _shard(shard)
    try:
        settings = settings_from(
            model=model,
            endpoint=endpoint,
            family=family,
            server_timeout=timeout,
            server_retries=retries,
            workflow=workflow,
            max_total_tokens=max_total_tokens,
            max_visual_tokens=max_visual_tokens,
            allow_calibration_mismatch=allow_mismatch or None,
            default_gate=False if no_gate else None,
        )
        output_file(out, "results file (--out)", ManifestError)
        items, problems = read_question_file(questions, strict=False, max_options=settings.max_options)
        items = [q for i, q in enumerate(items) if i % parts == part]
        for problem in problems:
            err_console.print(
                f"[yellow]skipped[/] {escape(str(questions))}:{problem.line}: {escape(problem.error)}",
                highlight=False,
                soft_wrap=True,
            )
        if not items:
            raise FoveateError(f"{questions} has no question that can be asked")
        stores = {
            "memory_db": memory or settings.memory_db,
            "checkpoints": checkpoints or settings.checkpoints,
        }
        check_before_loading(
            settings.model_copy(update=stores), memory=memory is not None, checkpoints=checkpoints is not None
        )
        vlm = load_model(settings)
        recipe = AgentRecipe(
            settings, settings.workflow, overrides={"memory": memory, "checkpoints": checkpoints}
        )
        with (
            Answerers(
                vlm, {"batch": recipe}, concurrency=concurrency, mode=_one_process(memory, checkpoints)
            ) as answerers,
            ResultsFile(out, lambda line: str(line["id"])) as results,
            question_progress() as bar,
        ):
            done = results.done(results.open(resume=resume))
            task = bar.add_task("questions", total=len(items), completed=0)
            outcome = answer_file(
                items,
                answerers,
                results,
                done=done,
                concurrency=concurrency,
                progress=lambda n, total: bar.update(task, completed=n),
            )
            how = answerers.describe()
    except FoveateError as exc:
        raise fail(exc) from None
    console.print(
        f"{concurrency} in flight: {how}; answered {outcome.answered} questions in {outcome.wall_s:.1f} s "
        f"({outcome.questions_per_second:.2f} questions / s), {outcome.skipped} already in {out}, "
        f"{len(problems)} bad lines skipped",
        highlight=False,
        soft_wrap=True,
    )
    if outcome.retry:
        err_console.print(
            f"[yellow]{len(outcome.retry)} questions failed in the backend[/] (not written): run again with "
            f"--resume to retry them",
            highlight=False,
        )
        raise typer.Exit(code=1)


def _shard(text: str | None) -> tuple[int, int]:
    """``K/N`` as (K, N), checked; no shard is 0/1."""
    if text is None:
        return 0, 1
    k, _, n = text.partition("/")
    if not (k.strip().isdigit() and n.strip().isdigit()) or not 0 <= int(k) < int(n):
        raise fail(f"--shard is K/N with 0 <= K < N, e.g. 0/4; not {text!r}")
    return int(k), int(n)


def _one_process(*stores: str | None) -> Literal["coalesced"] | None:
    """Keep to one process when a store is a SQLite file: several processes writing one wait on its lock
    (PostgreSQL URLs take many writers)."""
    files = [s for s in stores if s is not None and not s.startswith(("postgresql", "postgres:"))]
    return "coalesced" if files else None
