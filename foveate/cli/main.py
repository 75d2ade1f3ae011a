"""The ``foveate`` command line (typer): the commands, wired together. Rich output lives in ``foveate.cli``
and only there; each command is a module of its own (``call_cmd``, ``run_cmd``, ``chat``,
``calibrate_cmd``, ``eval_cmd``, ``batch_cmd``, ``memory_cmd``, ``graph_cmd``, ``bench_cmd``, ``demo``), and
what they share is in ``common`` (and ``progress``, the bar of long commands).
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from rich.markup import escape

from foveate.cli.batch_cmd import batch as batch_command
from foveate.cli.bench_cmd import bench_app
from foveate.cli.calibrate_cmd import calibrate as calibrate_command
from foveate.cli.call_cmd import call as call_command
from foveate.cli.chat import chat as chat_command
from foveate.cli.common import EndpointOpt, ModelOpt, console, err_console, fail
from foveate.cli.eval_cmd import eval_command
from foveate.cli.feedback_cmd import feedback as feedback_command
from foveate.cli.graph_cmd import graph_app
from foveate.cli.memory_cmd import memory_app
from foveate.cli.run_cmd import run as run_command
from foveate.cli.runs_cmd import runs as runs_command
from foveate.cli.serve_cmd import serve as serve_command
from foveate.errors import FoveateError

app = typer.Typer(
    name="foveate",
    help="Agentic question answering over large, detailed images with a local VLM, under a token budget.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # click's own help, not rich's panels: rich read every "[default: ...]" as a markup tag and dropped it,
    # and its table cut long option names at 80 columns ("--allow-calibratio…"); click wraps the text
    rich_markup_mode=None,
    context_settings={"max_content_width": 120},  # wide terminals get wide help (click's own cap is 80)
)


@app.command()
def demo(
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
) -> None:
    """Answer a question about a generated scene end to end, offline, on the embedded default model."""
    from foveate.cli.demo import run_demo

    try:
        run_demo(console, model=model, endpoint=endpoint)
    except FoveateError as exc:
        raise fail(exc) from None


app.command("call")(call_command)
app.command("run")(run_command)
app.command("runs")(runs_command)
app.command("feedback")(feedback_command)
app.command("serve")(serve_command)
app.command("chat")(chat_command)
app.command("calibrate")(calibrate_command)
app.command("eval")(eval_command)
app.command("batch")(batch_command)
app.add_typer(memory_app, name="memory")
app.add_typer(graph_app, name="graph")
app.add_typer(bench_app, name="bench")


def _version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        console.print(f"foveate {version('foveate')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log what happens [default: off].")
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_version, help="Print foveate's version and exit."),
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )
    # libraries' own warnings (a FutureWarning from transformers, a UserWarning from torch) are not
    # foveate's to show: logged, and shown only with --verbose; foveate's own warnings are log records
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.INFO if verbose else logging.ERROR)


def _click_error(name: str) -> type[Exception]:
    # typer ships its own copy of click; its exception classes are reachable from the public BadParameter
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


def main() -> None:
    """The console script: usage errors (a wrong option, a missing argument) become one line on stderr."""
    import sys

    usage_error, click_exception = _click_error("UsageError"), _click_error("ClickException")
    try:
        code = app(standalone_mode=False, prog_name="foveate")
    except usage_error as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # the help was printed: nothing went wrong
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = exc.format_message()  # type: ignore[attr-defined]
        err_console.print(f"[bold red]error:[/] {escape(message)}{hint}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Abort:
        err_console.print("[bold red]aborted[/]")
        sys.exit(130)
    except click_exception as exc:
        message = exc.format_message()  # type: ignore[attr-defined]
        err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
        sys.exit(int(getattr(exc, "exit_code", 1)))
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
