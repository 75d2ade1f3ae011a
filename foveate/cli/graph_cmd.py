"""``foveate graph``: check a workflow YAML file and draw it.

``show`` validates the file first (against the built-in node types and conditions from
``foveate.graphs.nodes`` when that module is there, else the structure only, with a note on
stderr) and then prints Mermaid on plain stdout, so that ``foveate graph show flow.yaml >
flow.mmd`` gives a file that Mermaid renders as is.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from foveate.errors import FoveateError

if TYPE_CHECKING:
    from foveate.graphs.registry import Registry

graph_app = typer.Typer(
    help="Workflow graphs: validate a workflow YAML file and draw it.", no_args_is_help=True
)
err_console = Console(stderr=True)


def _fail(exc: BaseException | str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def builtin_registry_or_none() -> Registry | None:
    """The built-in registry from ``foveate.graphs.nodes.builtin_registry()``, or None if not installed."""
    try:
        module = importlib.import_module("foveate.graphs.nodes")
    except ModuleNotFoundError as exc:
        if exc.name != "foveate.graphs.nodes":
            raise  # the module is there but something it imports is not: a real error
        return None
    factory = getattr(module, "builtin_registry", None)
    return factory() if factory is not None else None


@graph_app.command("show")
def show(
    file: Annotated[Path, typer.Argument(help="Workflow YAML file.")],
    registry_check: Annotated[
        bool,
        typer.Option(
            "--registry-check/--no-registry-check",
            help="Check node types, conditions and params against the built-in registry.",
        ),
    ] = True,
) -> None:
    """Validate a workflow file and print it as a Mermaid flowchart."""
    from foveate.graphs.mermaid import to_mermaid
    from foveate.graphs.spec import load_workflow

    try:
        registry = builtin_registry_or_none() if registry_check else None
        if registry_check and registry is None:
            err_console.print(
                "note: no built-in node registry (foveate.graphs.nodes) is installed; "
                "checked the structure only, not node types, conditions or params",
                highlight=False,
                soft_wrap=True,
            )
        spec, _ = load_workflow(file, registry)
    except FoveateError as exc:
        raise _fail(exc) from None
    typer.echo(to_mermaid(spec), nl=False)
