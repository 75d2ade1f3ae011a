"""``foveate feedback RUN_ID``: say whether a saved run's answer was right (``Agent.feedback``).

The run is read from the checkpoint database, with the workflow it ran; the insight memory records the
outcome, writes the run's lessons now that it is known, and counts the recalled insights as helpful or not.
Writing lessons needs the model (it writes them when it can), so the model is loaded.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from foveate.cli.common import (
    EndpointOpt,
    FamilyOpt,
    ModelOpt,
    NamespaceOpt,
    console,
    fail,
    load_model,
    resume_command,
    same_model,
    saved_run,
    settings_from,
    started_with,
)
from foveate.cli.preflight import check_before_loading
from foveate.errors import FoveateError

__all__ = ["feedback"]


def feedback(
    run_id: Annotated[
        str, typer.Argument(help="The run (its id is printed first by foveate run; see foveate runs).")
    ],
    right: Annotated[
        bool | None,
        typer.Option(
            "--right/--wrong",
            help="Whether the run's answer was right [default: none: read from --answer].",
            show_default=False,
        ),
    ] = None,
    answer: Annotated[
        str | None,
        typer.Option("--answer", help="The right answer (right or wrong follows) [default: none]."),
    ] = None,
    note: Annotated[
        str | None, typer.Option("--note", help="A note kept with the run in the memory [default: none].")
    ] = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            "--checkpoints",
            help="SQLite file or PostgreSQL URL of the run checkpoints [default: ~/.foveate/runs.db].",
            show_default=False,
        ),
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option("--memory", "--db", help="Insight memory database [default: ~/.foveate/memory.db]."),
    ] = None,
    namespace: NamespaceOpt = None,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            "-w",
            help="The workflow the run used, if its file has moved [default: the one the run began with].",
        ),
    ] = None,
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    family: FamilyOpt = None,
) -> None:
    """Say how a saved run went: the memory learns from it (its lessons, the insights it used)."""
    from foveate.agent import Agent

    if right is None and answer is None and note is None:
        raise fail("say how the run went: --right, --wrong or --answer TEXT (and --note TEXT if you like)")
    try:
        settings = settings_from(
            model=model,
            endpoint=endpoint,
            family=family,
            memory_db=memory,
            checkpoints=checkpoints,
            namespace=namespace,
        )
        saved = saved_run(run_id, settings.checkpoints)
        settings = settings.model_copy(update={"workflow": started_with(saved, workflow)})
        check_before_loading(settings, calibration=False)
        if saved.status != "done":
            again = resume_command(run_id, checkpoints)
            raise FoveateError(f"run {run_id} is {saved.status}: finish it first (`{again}`)")
        with Agent.from_defaults(settings=settings, vlm=load_model(settings)) as agent:
            same_model(saved, agent.model_id)
            agent.feedback(run_id, correct=right, answer=answer, note=note)
            memory_run = agent.workflow.state(run_id).get("run_id")
            stored = agent.memory.get_run(memory_run) if agent.memory and memory_run is not None else None
    except FoveateError as exc:
        raise fail(exc) from None
    if stored is None:
        console.print(f"run {escape(run_id)}: noted (no insight memory to record it in)", highlight=False)
        return
    verdict = {True: "right", False: "wrong", None: "not judged"}[stored.correct]
    console.print(
        f"run {escape(run_id)}: {verdict}, recorded as memory run {stored.id}",
        highlight=False,
        soft_wrap=True,
    )
