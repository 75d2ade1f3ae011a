"""``foveate run``: answer a question with a workflow, showing each node as it finishes; resume runs.

It goes through ``Agent`` (built by ``Agent.from_defaults`` from the flags and ``foveate.settings``), as a
Python user would. Runs are checkpointed (``--checkpoints``, a SQLite file by default, or a PostgreSQL URL),
so one that was killed continues from its last completed node with ``--resume RUN_ID``. When the
abstention node is set to ask a person (``abstain: {ask_human: true}``) and the run pauses, ``--ask`` puts
the question to you on the terminal; otherwise the run id is printed for a later
``--resume RUN_ID --answer ...``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from foveate.cli.common import (
    AllowMismatchOpt,
    FamilyOpt,
    NamespaceOpt,
    RetriesOpt,
    TimeoutOpt,
    console,
    err_console,
    fail,
    load_model,
    resume_command,
    same_model,
    saved_run,
    settings_from,
    split_options,
    started_with,
)
from foveate.cli.preflight import check_before_loading
from foveate.cli.waiting import Waiting, waiting_on_model
from foveate.errors import BackendError, FoveateError

if TYPE_CHECKING:
    from rich.console import Console

    from foveate.agent import Agent, Answer
    from foveate.graphs.workflow import NodeEvent, SearchProgress

__all__ = ["run"]


def run(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="[WORKFLOW.yaml] IMAGE QUESTION: an optional workflow file, the image (a file, a PDF's "
            "first page, or - for standard input), the question (nothing with --resume).",
            show_default=False,
        ),
    ] = None,
    page: Annotated[
        int | None,
        typer.Option(
            "--page", min=0, max=10**6, help="Which page of a PDF, from 0 [default: 0, the first page]."
        ),
    ] = None,
    frame: Annotated[
        int | None,
        typer.Option(
            "--frame",
            min=0,
            max=10**6,
            help="Which frame of a GIF or multi-page TIFF, from 0 [default: 0, the first frame].",
        ),
    ] = None,
    options: Annotated[
        str | None,
        typer.Option(
            "--options",
            help="Comma-separated answer options, scored, not generated [default: none: the answer is "
            "generated].",
        ),
    ] = None,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow", "-w", help="Built-in workflow (direct, zoom, full) or a YAML file [default: full]."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Local model folder [default: $FOVEATE_MODEL, config.toml, else the embedded tiny VLM].",
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="OpenAI-compatible server URL [default: $FOVEATE_ENDPOINT, else the local model].",
        ),
    ] = None,
    family: FamilyOpt = None,
    timeout: TimeoutOpt = None,
    retries: RetriesOpt = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            "--checkpoints",
            help="SQLite file or PostgreSQL URL for run checkpoints [default: ~/.foveate/runs.db].",
        ),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume", help="Continue the run with this id (see foveate runs) [default: none: a new run]."
        ),
    ] = None,
    answer: Annotated[
        str | None,
        typer.Option(
            "--answer", help="With --resume: your answer to a paused run [default: none: let it abstain]."
        ),
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option("--memory", "--db", help="Insight memory database [default: ~/.foveate/memory.db]."),
    ] = None,
    namespace: NamespaceOpt = None,
    no_memory: Annotated[
        bool, typer.Option("--no-memory", help="Neither recall nor remember [default: off].")
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            help="Calibration JSON for the abstention gate [default: none: --alpha's, else the shipped "
            "gate].",
        ),
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            "--alpha",
            min=0.0,
            max=1.0,
            help="Use the stored calibration at this alpha (foveate calibrate) [default: none: the shipped "
            "gate].",
        ),
    ] = None,
    method: Annotated[
        str | None, typer.Option("--method", help="With --alpha: lac, aps, crc or ltt [default: lac].")
    ] = None,
    allow_mismatch: AllowMismatchOpt = False,
    no_gate: Annotated[
        bool, typer.Option("--no-gate", help="Answer without the shipped abstention gate [default: off].")
    ] = False,
    max_total_tokens: Annotated[
        int | None,
        typer.Option(
            "--budget",
            "--max-total-tokens",
            min=1,
            max=10**12,
            help="Cap on all tokens for the question [default: no cap].",
        ),
    ] = None,
    max_visual_tokens: Annotated[
        int | None,
        typer.Option(
            "--max-visual-tokens", min=1, max=10**12, help="Cap on visual tokens per image [default: no cap]."
        ),
    ] = None,
    ask: Annotated[
        bool, typer.Option("--ask/--no-ask", help="Ask me when the run pauses for a person.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the answer as one JSON object (the Answer model's fields) on stdout; the run id "
            "and each node's notes go to stderr [default: off].",
        ),
    ] = False,
) -> None:
    """Answer a question about an image with a workflow (perceive, zoom, recall, reason, abstain...).

    Defaults come from FOVEATE_* environment variables and ~/.foveate/config.toml (see foveate.settings).
    """
    from foveate.agent import Agent
    from foveate.conformal.procedure import load_calibration_file
    from foveate.graphs.state import RunInput
    from foveate.imaging import check_image, load_image

    words = list(args or [])
    if len(words) == 3 and words[0].lower().endswith((".yaml", ".yml")):
        if workflow is not None:
            raise fail(f"give the workflow once: {words[0]} or --workflow {workflow}")
        workflow = words.pop(0)
    if resume is None and len(words) != 2:
        raise fail("give [WORKFLOW.yaml] IMAGE QUESTION, or --resume RUN_ID")
    if resume is not None and words:
        raise fail("--resume continues a run; give no IMAGE or QUESTION with it")
    if resume is not None and (page is not None or frame is not None):
        raise fail("--page and --frame choose the image of a new run; a resumed run keeps its own")
    if as_json and ask:
        raise fail("--ask puts a question to you on the terminal; --json keeps stdout for the answer alone")
    if answer is not None and resume is None:
        raise fail("--answer replies to a paused run: give it with --resume RUN_ID")
    if words and not words[0].strip():
        raise fail("the image path is empty")
    # the text as given: a Path would fold "http://x" into "http:/x" (then "not found", not "no downloads")
    image: Any = words[0] if words else None
    question = words[1] if words else None
    if image == "-":  # the image on standard input: `convert page.tif png:- | foveate run - "..."`
        image = sys.stdin.buffer.read()
    from foveate.graphs.workflow import new_run_id

    run_id = resume or new_run_id()
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
            memory_db=memory,
            namespace=namespace,
            checkpoints=checkpoints,
            alpha=alpha,
            method=method,
            allow_calibration_mismatch=allow_mismatch or None,
            default_gate=False if no_gate else None,
        )
        saved = saved_run(resume, settings.checkpoints) if resume is not None else None
        if saved is not None:  # go on with the workflow the run began with, unless told otherwise
            settings = settings.model_copy(update={"workflow": started_with(saved, workflow)})
        overrides: dict[str, Any] = {}
        if no_memory:
            overrides["memory"] = None
        if calibration is not None:
            overrides["calibration"] = load_calibration_file(calibration)
            overrides["allow_calibration_mismatch"] = allow_mismatch
        # everything that can be checked without the model, before it loads
        choices = split_options(options)
        if question is not None and image is not None:
            RunInput.checked(
                max_options=settings.max_options, question=question, image=image, options=choices
            )
            check_image(image, frame=frame)  # its header: a missing or unreadable file named before the wait
            if page is not None or frame is not None:  # decoded now; the trace says which page or frame
                image = load_image(image, page=page, frame=frame)
        check_before_loading(settings, memory=not no_memory, calibration=calibration is None)
        overrides["vlm"] = load_model(settings)
        with Agent.from_defaults(settings=settings, **overrides) as agent:
            if saved is not None:
                same_model(saved, agent.model_id)
            shown = _Shown(settings.endpoint, settings.server_timeout, err_console if as_json else console)
            out = _answer(agent, image, question, choices, run_id, resume, answer, ask, shown)
            model_id = agent.model_id
    except KeyboardInterrupt:
        again = escape(resume_command(run_id, checkpoints))
        err_console.print(f"interrupted: `{again}` goes on from its last saved step", soft_wrap=True)
        raise typer.Exit(code=130) from None
    except BackendError as exc:  # a server that died mid-run: what was done is checkpointed
        raise fail(
            f"{exc} (run {run_id}: `{resume_command(run_id, checkpoints)}` goes on from its last saved step)"
        ) from None
    except FoveateError as exc:
        raise fail(exc) from None
    if as_json:
        typer.echo(out.model_dump_json())
    else:
        _report(out, model_id, checkpoints)


def _answer(
    agent: Agent,
    image: Any,  # the text, bytes from stdin, or the page or frame chosen
    question: str | None,
    choices: list[str],
    run_id: str,
    resume: str | None,
    answer: str | None,
    ask: bool,
    show: _Shown,
) -> Answer:
    """Run (or resume) to the end or to a pause, showing each node; with ``ask``, put pauses to the person."""
    if resume is not None:
        before = agent.answer(resume)
        if before.status == "waiting" and (answer or not ask):
            out = agent.resume(resume, {"answer": answer} if answer else None)
        elif before.status == "waiting":
            out = before  # --ask: the loop below puts the question to the person
        else:
            out = agent.answer(show(agent.resume_stream(resume, watch=show.watch)) or resume)
    else:
        assert image is not None and question is not None
        # the id first, before the first node: a run killed later can still be found and resumed
        show.console.print(f"run {run_id}", highlight=False)
        show(agent.stream(question, image=image, options=choices or None, run_id=run_id, watch=show.watch))
        out = agent.answer(run_id)
    while out.status == "waiting" and ask:
        pending = out.pending or {}
        console.print(
            f"[yellow]the workflow abstained[/] ({escape(str(pending.get('reason', '')))}); "
            f"its candidate was {escape(repr(pending.get('candidate')))}"
        )
        reply = typer.prompt("your answer (empty: let it abstain)", default="", show_default=False)
        out = agent.resume(out.run_id, {"answer": reply} if reply.strip() else None)
    return out


class _Shown:
    """Prints each node's messages as it finishes, with a spinner and retry notes while the model works."""

    def __init__(self, server: str | None, timeout: float, out: Console) -> None:
        self.server, self.timeout, self.console = server, timeout, out
        self._waiting: Waiting | None = None

    def watch(self, progress: SearchProgress) -> None:
        """Told each probe of a search (the stream is lazy: this is called while ``__call__`` iterates)."""
        if self._waiting is not None:
            self._waiting.working(progress.node, progress.probes, progress.tokens)

    def __call__(self, events: Iterator[NodeEvent]) -> str | None:
        """Show the events; the run's id."""
        run_id = None
        with waiting_on_model(self.server, self.timeout) as waiting:
            self._waiting = waiting
            for event in events:
                run_id = event.run_id
                for text in event.messages or [""]:
                    self.console.print(f"[cyan]{escape(event.node)}[/] {escape(text)}", soft_wrap=True)
                waiting.node_done(event.node)
        return run_id


def _report(out: Answer, model_id: str, checkpoints: str | None) -> None:
    again = resume_command(out.run_id, checkpoints)
    if out.status == "waiting":
        console.print(
            f"[yellow]paused for a person[/]: resume with `{escape(again)} --answer ...`", soft_wrap=True
        )
    elif out.status == "incomplete":
        console.print(f"[yellow]incomplete[/]: resume with `{escape(again)}`", soft_wrap=True)
    elif out.abstained:
        console.print(f"[bold]abstained[/]: {escape(out.reason)}")
    else:
        console.print(f"answer: [bold]{escape(str(out.text))}[/]")
    for overrun in out.overruns:
        console.print(f"[bold yellow]over budget[/]: {escape(overrun)}", highlight=False, soft_wrap=True)
    u = out.tokens
    console.print(
        f"run {out.run_id}  model: {model_id}  tokens: {u.visual_tokens} visual + {u.text_tokens} text + "
        f"{u.generated_tokens} generated  probes: {out.probes}",
        highlight=False,
        soft_wrap=True,
    )
