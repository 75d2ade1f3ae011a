"""``foveate graph``: check a workflow YAML file and draw it.

``show`` validates the file first (against the built-in node types and conditions from
``foveate.graphs.nodes``, unless ``--no-registry-check``: then the structure only) and then prints
Mermaid on plain stdout, so that ``foveate graph show flow.yaml >
flow.mmd`` gives a file that Mermaid renders as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from foveate.cli.common import fail
from foveate.errors import FoveateError

__all__ = ["graph_app"]

graph_app = typer.Typer(
    rich_markup_mode=None,
    help="Workflow graphs: validate a workflow YAML file and draw it.",
    no_args_is_help=True,
)


@graph_app.command("show")
def show(
    file: Annotated[
        str, typer.Argument(help="A workflow YAML file, or a built-in workflow's name: direct, zoom, full.")
    ],
    registry_check: Annotated[
        bool,
        typer.Option(
            "--registry-check/--no-registry-check",
            help="Check node types, conditions and params against the built-in registry.",
        ),
    ] = True,
) -> None:
    """Validate a workflow (a file or a built-in) and print it as a Mermaid flowchart."""
    from foveate.graphs.mermaid import to_mermaid
    from foveate.graphs.nodes import builtin_registry
    from foveate.graphs.spec import load_workflow
    from foveate.graphs.workflow import BUILTIN_WORKFLOWS, builtin_workflow_path

    # a built-in's name means the built-in, as it does for `foveate run --workflow`
    path = builtin_workflow_path(file) if file in BUILTIN_WORKFLOWS else Path(file)
    try:
        registry = builtin_registry() if registry_check else None
        spec, _ = load_workflow(path, registry)
    except FoveateError as exc:
        raise fail(exc) from None
    typer.echo(to_mermaid(spec), nl=False)
