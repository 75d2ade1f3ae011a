"""``foveate runs``: the runs in the checkpoint database, newest first; ``foveate runs RUN_ID`` shows one.

Killed runs are there too (``incomplete``), with the command that goes on from their last saved step. No
model is loaded and no workflow is compiled (``foveate.graphs.runs``), so this answers in about a second.
``--json`` prints one JSON object per run (``RunSummary``'s fields), or for one run the ``Answer`` model's
fields, as ``foveate run --json`` does.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from foveate.cli.common import console, fail, resume_command, saved_checkpoints, settings_from
from foveate.errors import FoveateError

if TYPE_CHECKING:
    from foveate.graphs.runs import RunSummary

__all__ = ["runs"]


def runs(
    run_id: Annotated[
        str | None,
        typer.Argument(
            help="Show this run whole: its question, each node's notes, its answer.", show_default=False
        ),
    ] = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            "--checkpoints",
            help="SQLite file or PostgreSQL URL of the run checkpoints [default: $FOVEATE_CHECKPOINTS, "
            "config.toml, else ~/.foveate/runs.db].",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10**9, help="List at most this many.")] = 20,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per run, for scripts [default: off].")
    ] = False,
) -> None:
    """List the runs in the checkpoint database, newest first, killed ones included; or show one."""
    from foveate.agent import Answer
    from foveate.graphs.runs import list_runs, read_run

    try:
        settings = settings_from(checkpoints=checkpoints)
        missing = "no runs to list" if run_id is None else f"no run {run_id!r}"
        with saved_checkpoints(settings.checkpoints, missing) as saver:
            if run_id is None:
                found = list_runs(saver, limit=limit)
            else:
                summary, out = read_run(saver, run_id)
    except FoveateError as exc:
        raise fail(exc) from None
    if run_id is None:
        if as_json:
            for item in found:
                typer.echo(item.model_dump_json())
        else:
            _table(found, checkpoints)
        return
    answer = Answer.from_output(
        out, latency_s=0.0, workflow=summary.workflow or "", model_id=summary.model or ""
    )
    if as_json:
        typer.echo(answer.model_dump_json())
        return
    console.print(
        f"run [bold]{escape(run_id)}[/]  {summary.status}  {_when(summary.updated)}", highlight=False
    )
    console.print(f"question: {escape(summary.question)}", highlight=False, soft_wrap=True)
    for label, value in (("image", summary.image), ("workflow", summary.workflow), ("model", summary.model)):
        if value:
            console.print(f"{label}: {escape(value)}", highlight=False, soft_wrap=True)
    for line in answer.trace:
        node, _, text = line.partition(": ")
        console.print(f"[cyan]{escape(node)}[/] {escape(text)}", soft_wrap=True)
    if summary.status == "done":
        said = f"abstained: {out.abstain_reason}" if out.abstained else f"answer: {out.answer}"
        console.print(escape(said), highlight=False, soft_wrap=True)
    else:
        due = f" (next: {', '.join(summary.next)})" if summary.next else ""
        again = escape(resume_command(run_id, checkpoints))
        console.print(f"{summary.status}{due}: `{again}` goes on", highlight=False, soft_wrap=True)
    u = summary.tokens
    console.print(
        f"tokens: {u.visual_tokens} visual + {u.text_tokens} text + {u.generated_tokens} generated  "
        f"probes: {summary.probes}",
        highlight=False,
    )


def _table(found: list[RunSummary], checkpoints: str | None) -> None:
    if not found:
        console.print("no runs yet")
        return
    table = Table(box=None, pad_edge=False)
    # the id, status and time are never cut (a user copies the id); the texts share what is left
    for column in ("run", "status", "updated"):
        width = max(len(column), *(len(_cell(item, column)) for item in found))
        table.add_column(column, no_wrap=True, min_width=width)
    table.add_column("workflow", no_wrap=True, overflow="ellipsis", min_width=8, max_width=16)
    table.add_column("question", no_wrap=True, overflow="ellipsis", ratio=3)
    table.add_column("answer", no_wrap=True, overflow="ellipsis", ratio=1)
    for item in found:
        answer = "(abstained)" if item.abstained else (item.answer or "")
        workflow = Path(item.workflow).name if item.workflow and "/" in item.workflow else item.workflow
        cells = [_cell(item, c) for c in ("run", "status", "updated")]
        table.add_row(*cells, escape(workflow or ""), escape(item.question), escape(str(answer)))
    console.print(table)
    for item in found:
        if item.status != "done":
            again = escape(resume_command(item.run_id, checkpoints))
            console.print(f"{item.run_id}: `{again}` goes on", highlight=False, soft_wrap=True)


def _cell(item: RunSummary, column: str) -> str:
    return {"run": item.run_id, "status": item.status, "updated": _when(item.updated)}[column]


def _when(stamp: str) -> str:
    """A checkpoint's UTC time, in the local zone, to the second."""
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return stamp
