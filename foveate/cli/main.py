"""The ``foveate`` command line (typer). Rich output lives here and only here."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from foveate.cli.calibrate_cmd import calibrate as calibrate_command
from foveate.cli.chat import chat as chat_command
from foveate.cli.graph_cmd import graph_app
from foveate.cli.memory_cmd import memory_app
from foveate.cli.run_cmd import run as run_command
from foveate.errors import FoveateError

app = typer.Typer(
    name="foveate",
    help="Agentic question answering over large, detailed images with a local VLM, under a token budget.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Local model folder or hub id (a hub id needs a network); with --endpoint, the served name.",
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option("--endpoint", help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 (vLLM)."),
]
VisualCapOpt = Annotated[
    int | None, typer.Option("--max-visual-tokens", min=1, help="Cap on visual tokens per image.")
]
TotalCapOpt = Annotated[
    int | None,
    typer.Option("--budget", "--max-total-tokens", min=1, help="Cap on all tokens spent on the question."),
]


def _fail(exc: BaseException) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _load_vlm(model: str | None, endpoint: str | None):  # type: ignore[no-untyped-def]
    """The model from the flags, else from FOVEATE_MODEL / FOVEATE_ENDPOINT / the config file, else the
    embedded tiny VLM. With an endpoint, ``model`` is the served model's name (None: the server's first)."""
    if model is None and endpoint is None:
        from foveate.settings import load_settings

        settings = load_settings()
        model, endpoint = settings.model, settings.endpoint
    if endpoint:
        from foveate.vlm.openai_vlm import OpenAIVLM

        return OpenAIVLM(endpoint, model=model)
    from foveate.agent import default_model_path
    from foveate.vlm.transformers_vlm import TransformersVLM

    return TransformersVLM(model or str(default_model_path()))


@app.command()
def ask(
    image: Annotated[Path, typer.Argument(help="Image file.")],
    question: Annotated[str, typer.Argument(help="The question.")],
    options: Annotated[
        str | None, typer.Option("--options", help="Comma-separated answer options (scored, not generated).")
    ] = None,
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    max_visual_tokens: VisualCapOpt = None,
    max_total_tokens: TotalCapOpt = None,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, help="Most tokens to generate (free-text answers).")
    ] = 64,
) -> None:
    """Ask one question about one image with a VLM (no agents: a single call)."""
    from foveate.vlm import TokenBudget, TokenLedger, VLMRequest

    try:
        budget = TokenBudget(max_visual_tokens_per_image=max_visual_tokens, max_total_tokens=max_total_tokens)
        request = VLMRequest.from_prompt(question, [image], budget=budget, max_new_tokens=max_new_tokens)
        vlm = _load_vlm(model, endpoint)
        ledger = TokenLedger(budget)
        if options:
            choices = [o.strip() for o in options.split(",") if o.strip()]
            scored = vlm.score(request, choices, ledger)
            table = Table("option", "log-prob", "probability")
            for opt, lp, p in zip(scored.options, scored.logprobs, scored.probabilities, strict=True):
                table.add_row(opt, f"{lp:.3f}", f"{p:.3f}")
            console.print(table)
            console.print(f"answer: [bold]{scored.best}[/]")
        else:
            result = vlm.generate(request, ledger)
            console.print(f"answer: [bold]{result.text}[/]")
        spent = ledger.spent
        console.print(
            f"model: {vlm.model_id}  tokens: {spent.visual_tokens} visual + {spent.text_tokens} text + "
            f"{spent.generated_tokens} generated"
        )
    except FoveateError as exc:
        raise _fail(exc) from None


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
        raise _fail(exc) from None


app.add_typer(memory_app, name="memory")
app.add_typer(graph_app, name="graph")
app.command("calibrate")(calibrate_command)
app.command("run")(run_command)
app.command("chat")(chat_command)

bench_app = typer.Typer(help="Synthetic benchmarks and measurements.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("make")
def bench_make(
    out: Annotated[Path, typer.Option("--out", help="Folder to write images/ and manifest.jsonl to.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of scenes.")] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Benchmark seed.")] = 1,
) -> None:
    """Write a synthetic high-resolution benchmark: PNG scenes plus a JSONL manifest."""
    from foveate.fixtures.scenes import make_benchmark

    try:
        items = make_benchmark(out, n=n, seed=seed)
    except (FoveateError, OSError) as exc:
        raise _fail(exc) from None
    console.print(f"wrote {len(items)} scenes to {out} (manifest: {out / 'manifest.jsonl'})")


@bench_app.command("fixture")
def bench_fixture(
    out: Annotated[Path, typer.Option("--out", help="Markdown report to write.")] = Path(
        "docs/benchmarks/fixture.md"
    ),
    n: Annotated[int, typer.Option("--n", min=1, help="Held-out scenes to measure on.")] = 300,
    seed: Annotated[
        int, typer.Option("--seed", help="Held-out scene seed (training uses 1000, 1001 and 2000).")
    ] = 7,
    model: ModelOpt = None,
) -> None:
    """Measure the embedded tiny VLM: crop vs whole-image accuracy, existence AUROC, by target size."""
    from foveate.fixtures.bench import write_fixture_report

    command = f"foveate bench fixture --n {n} --seed {seed}" + (f" --model {model}" if model else "")
    try:
        from foveate.agent import default_model_path

        write_fixture_report(Path(model) if model else default_model_path(), out, n, seed, command)
    except FoveateError as exc:
        raise _fail(exc) from None
    console.print(out.read_text())


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


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
