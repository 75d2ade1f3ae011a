"""``foveate run``: answer a question with a workflow, showing each node as it finishes; resume runs.

Runs are checkpointed (``--checkpoints``, a SQLite file by default, or a PostgreSQL URL), so one that
was killed continues from its last completed node with ``--resume RUN_ID``. When the abstention node
is set to ask a person (``abstain: {ask_human: true}``) and the run pauses, ``--ask`` puts the question
to you on the terminal; otherwise the run id is printed for a later ``--resume RUN_ID --answer ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from foveate.errors import FoveateError

console = Console()
err_console = Console(stderr=True)


def _fail(exc: BaseException | str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def load_calibration(path: Path) -> Any:
    """A calibration JSON file: a ConformalCalibration or SelectiveCalibration as pydantic writes it."""
    from pydantic import ValidationError

    from foveate.conformal import ConformalCalibration, SelectiveCalibration

    try:
        text = path.read_text()
    except OSError as exc:
        raise FoveateError(f"cannot read calibration file {path}: {exc.strerror}") from None
    for kind in (SelectiveCalibration, ConformalCalibration):
        try:
            return kind.model_validate_json(text)
        except ValidationError:
            continue
    raise FoveateError(f"{path} is not a calibration (ConformalCalibration or SelectiveCalibration JSON)")


def stored_calibration(database: str, model_id: str, alpha: float, method: str) -> Any:
    """The newest calibration ``foveate calibrate`` stored for this model, alpha and method."""
    from foveate.cli.calibrate_cmd import PROMPT_TEMPLATE
    from foveate.conformal.records import CalibrationStore, template_hash

    store = CalibrationStore(database)
    try:
        record = store.latest(model_id, template_hash(PROMPT_TEMPLATE), alpha, method)
    finally:
        store.close()
    if record is None:
        raise FoveateError(
            f"no {method} calibration at alpha {alpha} for {model_id} in {database}; "
            f"run `foveate calibrate --bench DIR --alpha {alpha}` first"
        )
    return record.result()


def run(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="[WORKFLOW.yaml] IMAGE QUESTION: an optional workflow file, the image, the question "
            "(nothing with --resume).",
            show_default=False,
        ),
    ] = None,
    options: Annotated[
        str | None, typer.Option("--options", help="Comma-separated answer options (scored, not generated).")
    ] = None,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow", "-w", help="Built-in workflow (direct, zoom, full) or a YAML file [default: full]."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Local model folder.")] = None,
    endpoint: Annotated[str | None, typer.Option("--endpoint", help="OpenAI-compatible server URL.")] = None,
    checkpoints: Annotated[
        str | None, typer.Option("--checkpoints", help="SQLite file or PostgreSQL URL for run checkpoints.")
    ] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue the run with this id.")] = None,
    answer: Annotated[
        str | None, typer.Option("--answer", help="With --resume: your answer to a paused run.")
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option("--memory", "--db", help="Insight memory database [default: ~/.foveate/memory.db]."),
    ] = None,
    no_memory: Annotated[bool, typer.Option("--no-memory", help="Neither recall nor remember.")] = False,
    calibration: Annotated[
        Path | None, typer.Option("--calibration", help="Calibration JSON for the abstention gate.")
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(
            "--alpha", min=0.0, max=1.0, help="Use the stored calibration at this alpha (foveate calibrate)."
        ),
    ] = None,
    method: Annotated[
        str | None, typer.Option("--method", help="With --alpha: lac, aps, crc or ltt [default: crc].")
    ] = None,
    max_total_tokens: Annotated[
        int | None,
        typer.Option("--budget", "--max-total-tokens", min=1, help="Cap on all tokens for the question."),
    ] = None,
    max_visual_tokens: Annotated[
        int | None, typer.Option("--max-visual-tokens", min=1, help="Cap on visual tokens per image.")
    ] = None,
    ask: Annotated[
        bool, typer.Option("--ask/--no-ask", help="Ask me when the run pauses for a person.")
    ] = False,
) -> None:
    """Answer a question about an image with a workflow (perceive, zoom, recall, reason, abstain...).

    Defaults come from FOVEATE_* environment variables and ~/.foveate/config.toml (see foveate.settings).
    """
    from foveate.cli.main import _load_vlm
    from foveate.graphs.nodes import Runtime
    from foveate.graphs.state import RunInput
    from foveate.graphs.workflow import Workflow, open_checkpointer
    from foveate.memory import InsightMemory
    from foveate.settings import load_settings
    from foveate.vlm.budget import TokenBudget

    words = list(args or [])
    if len(words) == 3 and words[0].lower().endswith((".yaml", ".yml")):
        if workflow is not None:
            raise _fail(f"give the workflow once: {words[0]} or --workflow {workflow}")
        workflow = words.pop(0)
    if resume is None and len(words) != 2:
        raise _fail("give [WORKFLOW.yaml] IMAGE QUESTION, or --resume RUN_ID")
    if resume is not None and words:
        raise _fail("--resume continues a run; give no IMAGE or QUESTION with it")
    image, question = (Path(words[0]), words[1]) if words else (None, None)
    try:
        settings = load_settings(
            model=model,
            endpoint=endpoint,
            workflow=workflow,
            max_total_tokens=max_total_tokens,
            max_visual_tokens=max_visual_tokens,
            memory_db=memory,
            checkpoints=checkpoints,
            alpha=alpha,
            method=method,
        )
        vlm = _load_vlm(settings.model, settings.endpoint)
        if calibration is not None:
            gate = load_calibration(calibration)
        elif settings.alpha is not None:
            gate = stored_calibration(settings.calibration_db, vlm.model_id, settings.alpha, settings.method)
        else:
            gate = None
        mem = None if no_memory else InsightMemory.open(settings.memory_db)
        try:
            with open_checkpointer(settings.checkpoints) as saver:
                runtime = Runtime(vlm=vlm, memory=mem, calibration=gate)
                flow = Workflow(settings.workflow, runtime, checkpointer=saver)
                if resume is not None:
                    before = flow.output(resume)
                    if before.status == "waiting" and (answer or not ask):
                        out = flow.resume(resume, {"answer": answer} if answer else None)
                    elif before.status == "waiting":
                        out = before  # --ask: the loop below puts the question to the person
                    else:
                        for event in flow.stream(None, run_id=resume):
                            _show(event.node, event.messages)
                        out = flow.output(resume)
                else:
                    assert image is not None and question is not None
                    choices = [o.strip() for o in (options or "").split(",") if o.strip()]
                    budget = TokenBudget(
                        max_total_tokens=settings.max_total_tokens,
                        max_visual_tokens_per_image=settings.max_visual_tokens,
                    )
                    run_input = RunInput(image=image, question=question, options=choices, budget=budget)
                    run_id = None
                    for event in flow.stream(run_input):
                        run_id = event.run_id
                        _show(event.node, event.messages)
                    assert run_id is not None
                    out = flow.output(run_id)
                while out.status == "waiting" and ask:
                    pending = out.pending or {}
                    console.print(
                        f"[yellow]the workflow abstained[/] ({escape(str(pending.get('reason', '')))}); "
                        f"its candidate was {escape(repr(pending.get('candidate')))}"
                    )
                    reply = typer.prompt(
                        "your answer (empty: let it abstain)", default="", show_default=False
                    )
                    out = flow.resume(out.run_id, {"answer": reply} if reply.strip() else None)
        finally:
            if mem is not None:
                mem.close()
    except FoveateError as exc:
        raise _fail(exc) from None
    _report(out, vlm.model_id)


def _show(node: str, messages: list[str]) -> None:
    for text in messages or [""]:
        console.print(f"[cyan]{escape(node)}[/] {escape(text)}")


def _report(out: Any, model_id: str) -> None:
    if out.status == "waiting":
        console.print(
            f"[yellow]paused for a person[/]: resume with `foveate run --resume {out.run_id} --answer ...`"
        )
    elif out.status == "incomplete":
        console.print(f"[yellow]incomplete[/]: resume with `foveate run --resume {out.run_id}`")
    elif out.abstained:
        console.print(f"[bold]abstained[/]: {escape(out.abstain_reason)}")
    else:
        console.print(f"answer: [bold]{escape(str(out.answer))}[/]")
    u = out.usage
    console.print(
        f"run {out.run_id}  model: {model_id}  tokens: {u.visual_tokens} visual + {u.text_tokens} text + "
        f"{u.generated_tokens} generated  probes: {out.probes}",
        highlight=False,
        soft_wrap=True,
    )
