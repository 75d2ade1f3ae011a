"""``foveate chat``: ask questions about images in a loop, see why, correct the agent.

The REPL itself is ``foveate.cli.repl.ChatREPL``; this module reads lines (prompt_toolkit in a terminal,
plain lines from a pipe) and builds the agent from the flags and ``foveate.settings``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape

from foveate.cli.common import AllowMismatchOpt, NamespaceOpt, fail, load_model, settings_from
from foveate.cli.preflight import check_before_loading
from foveate.cli.repl import ChatREPL, SlashCompleter, history_path
from foveate.errors import FoveateError

if TYPE_CHECKING:
    from foveate.agent import Agent

__all__ = ["chat"]


# ---------------------------------------------------------------------- the command
def _lines_from_prompt(repl: ChatREPL) -> Iterator[str]:
    """Lines typed at a prompt_toolkit prompt with history and completion; ends on Ctrl-D."""
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    session: PromptSession[str] = PromptSession(history=FileHistory(str(path)), completer=SlashCompleter())
    while True:
        try:
            yield session.prompt(repl.prompt)
        except KeyboardInterrupt:
            continue  # Ctrl-C clears the line, as in a shell
        except EOFError:
            return


def _lines_from_stream(stream: TextIO) -> Iterator[str]:
    for raw in stream:
        yield raw.rstrip("\r\n")


def chat(
    image: Annotated[
        list[Path] | None,
        typer.Option(
            "--image",
            metavar="PATH",
            help="Image to ask about (repeat for several) [default: none: give one with /image].",
        ),
    ] = None,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            "-w",
            metavar="NAME|FILE",
            help="Built-in workflow (direct, zoom, full) or a YAML file [default: full].",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            metavar="DIR",
            help="Local model folder [default: $FOVEATE_MODEL, config.toml, else the embedded tiny VLM].",
        ),
    ] = None,
    memory: Annotated[
        Path | None,
        typer.Option(
            "--memory",
            metavar="DB",
            help="Insight memory database [default: $FOVEATE_MEMORY_DB, else ~/.foveate/memory.db].",
        ),
    ] = None,
    namespace: NamespaceOpt = None,
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            metavar="FILE",
            help="Calibration JSON for the abstention gate [default: none: the shipped gate].",
        ),
    ] = None,
    allow_mismatch: AllowMismatchOpt = False,
) -> None:
    """Chat about images: ask questions, see why (/why, /show), correct the agent (/feedback); /help.

    Defaults come from FOVEATE_* environment variables and ~/.foveate/config.toml (see foveate.settings).
    """
    console = Console(highlight=False, soft_wrap=True)

    def factory(flow: str | Path) -> Agent:
        from foveate.agent import Agent
        from foveate.conformal.procedure import load_calibration_file

        overrides: dict[str, Any] = {"workflow": flow}
        if calibration is not None:
            overrides["calibration"] = load_calibration_file(calibration)
            overrides["allow_calibration_mismatch"] = allow_mismatch
        overrides["vlm"] = load_model(settings)
        return Agent.from_defaults(settings=settings, **overrides)

    try:
        settings = settings_from(
            model=model,
            workflow=workflow,
            memory_db=str(memory) if memory is not None else None,
            namespace=namespace,
            allow_calibration_mismatch=allow_mismatch or None,
        )
        repl = ChatREPL(console, factory, workflow=settings.workflow)
        repl.max_total_tokens = settings.max_total_tokens
        for path in image or []:  # a bad --image stops here, before the model loads (not a line mid-chat)
            repl.add_image(Path(path).expanduser())
        check_before_loading(settings, calibration=calibration is None)
        if calibration is not None:  # read now: a bad file is named before the model loads
            from foveate.conformal.procedure import load_calibration_file

            load_calibration_file(calibration)
        console.print("loading model...")
        agent = repl.load()
    except FoveateError as exc:
        raise fail(exc) from None
    console.print(
        f"ready: {escape(agent.model_id)}, workflow {escape(agent.workflow.spec.name)}. "
        "Type a question about the image, or /help."
    )
    try:
        lines = _lines_from_prompt(repl) if sys.stdin.isatty() else _lines_from_stream(sys.stdin)
        code = repl.run(lines)
    finally:
        repl.close()
    raise typer.Exit(code=code)
