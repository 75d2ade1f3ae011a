"""What every ``foveate`` command shares: the consoles, one-line errors, option types, settings, the model.

Commands stay thin: they parse flags, resolve them through ``foveate.settings`` (flags > ``FOVEATE_*`` >
``~/.foveate/config.toml`` > defaults), call the library, and print. Nothing here is imported by the
library.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from foveate.errors import FoveateError

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver

    from foveate.graphs.runs import RunSummary
    from foveate.settings import FoveateSettings
    from foveate.vlm.base import VLM

__all__ = [
    "AllowMismatchOpt",
    "ConcurrencyOpt",
    "EndpointOpt",
    "FamilyOpt",
    "JsonOpt",
    "ModelOpt",
    "RetriesOpt",
    "TimeoutOpt",
    "TotalCapOpt",
    "VisualCapOpt",
    "console",
    "err_console",
    "fail",
    "load_model",
    "resume_command",
    "same_model",
    "saved_checkpoints",
    "saved_run",
    "settings_from",
    "split_options",
    "started_with",
]

console = Console()
err_console = Console(stderr=True)

ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Local model folder or hub id (a hub id needs a network); with --endpoint, the served name "
        "[default: $FOVEATE_MODEL, config.toml, else the embedded tiny VLM].",
        show_default=False,
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 (vLLM) "
        "[default: $FOVEATE_ENDPOINT].",
        show_default=False,
    ),
]
FamilyOpt = Annotated[
    str | None,
    typer.Option(
        "--family",
        help="The model's family when its config cannot say, e.g. a served model: qwen2_vl, qwen2_5_vl, "
        "llava, idefics3 [default: $FOVEATE_FAMILY, config.toml, else from the model's config].",
        show_default=False,
    ),
]
VisualCapOpt = Annotated[
    int | None,
    typer.Option(
        "--max-visual-tokens", min=1, max=10**12, help="Cap on visual tokens per image [default: no cap]."
    ),
]
AllowMismatchOpt = Annotated[
    bool,
    typer.Option(
        "--allow-calibration-mismatch",
        help="Use a calibration made for another model, workflow or budget (no guarantee carries over) "
        "[default: off].",
    ),
]
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", help="Print JSON for scripts, one object per line, and nothing else [default: off]."
    ),
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", "-j", min=1, help="Questions in flight at once.")
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        min=0.1,
        max=3600.0,
        help="With --endpoint: seconds to wait for a reply before a try fails [default: 60].",
        show_default=False,
    ),
]
RetriesOpt = Annotated[
    int | None,
    typer.Option(
        "--retries",
        min=0,
        max=20,
        help="With --endpoint: tries after a failed one before the call fails [default: 2].",
        show_default=False,
    ),
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        help="A user's or project's part of the memory, apart from every other's "
        "[default: $FOVEATE_NAMESPACE, else the shared one].",
        show_default=False,
    ),
]
TotalCapOpt = Annotated[
    int | None,
    typer.Option(
        "--budget",
        "--max-total-tokens",
        min=1,
        max=10**12,
        help="Cap on all tokens spent on the question [default: no cap].",
    ),
]


def fail(exc: BaseException | str) -> typer.Exit:
    """Print ``error: ...`` on one line of stderr and return the exit (code 2) to raise."""
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def settings_from(**flags: Any) -> FoveateSettings:
    """The settings with the command's flags on top (flags that are None are not given)."""
    from foveate.settings import load_settings

    return load_settings(**flags)


def load_model(settings: FoveateSettings) -> VLM:
    """The model the settings name (``foveate.vlm.load_vlm``), with transformers' own progress bars and
    warnings kept out of the command's output."""
    from transformers.utils import logging as hf_logging

    from foveate.vlm import load_vlm

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    return load_vlm(settings.model, settings.endpoint, family=settings.family, **settings.backend_options())


def resume_command(run_id: str, checkpoints: str | None) -> str:
    """The command that goes on with a run, as a user types it: with ``--checkpoints`` when the run is not
    in the database a bare command would open."""
    import shlex

    words = ["foveate", "run", "--resume", run_id]
    if checkpoints is not None:
        words += ["--checkpoints", checkpoints]
    return shlex.join(words)


@contextmanager
def saved_checkpoints(where: str, what: str) -> Iterator[BaseCheckpointSaver[Any]]:
    """The checkpoint database at ``where``, opened only when it exists, so that looking creates nothing;
    ``what`` begins the error when it does not ("no run 'abc'")."""
    from foveate.errors import RunError
    from foveate.graphs.workflow import open_checkpointer

    if "://" not in where and not Path(where).expanduser().is_file():
        raise RunError(f"{what}: there is no checkpoint database at {where}")
    with open_checkpointer(where) as saver:
        yield saver


def saved_run(run_id: str, checkpoints: str) -> RunSummary:
    """A saved run's summary: what ``--resume`` and ``feedback`` go on with (its workflow, its model)."""
    from foveate.graphs.runs import read_run
    from foveate.graphs.workflow import check_run_id

    check_run_id(run_id)  # before the database: an id that is not text is named as such
    with saved_checkpoints(checkpoints, f"no run {run_id!r}") as saver:
        summary, _ = read_run(saver, run_id)
    return summary


def started_with(summary: RunSummary, workflow: str | None) -> str:
    """The workflow to go on with: ``workflow`` when given, else the one the run began with (a built-in's
    name or a YAML path, read off its checkpoint), else the default for a run saved before foveate kept it.
    Going on with another workflow's graph would run nodes that the run never had."""
    from foveate.errors import RunError
    from foveate.graphs.workflow import BUILTIN_WORKFLOWS

    if workflow is not None:
        return workflow
    began = summary.workflow or settings_from().workflow
    if began not in BUILTIN_WORKFLOWS and not Path(began).is_file():
        raise RunError(
            f"run {summary.run_id} began with workflow {began!r}, which is no longer there: give "
            "--workflow FILE to go on with it"
        )
    return began


def same_model(summary: RunSummary, model_id: str) -> None:
    """Refuse to go on with a run on another model than the one it began with (its answers, lessons and gate
    would mix two models)."""
    from foveate.errors import RunError

    if summary.model is not None and summary.model != model_id:
        raise RunError(
            f"run {summary.run_id} was answered by {summary.model}, not {model_id}: give --model (or "
            "--endpoint and --model) to go on with the same model"
        )


def split_options(text: str | None) -> list[str]:
    """``--options red,blue`` as a list; None when not given. One that names nothing (``""``, ``",,"``) is
    refused here, and an empty item (``red,,blue``) is kept, for the question's checks to refuse."""
    if text is None:
        return []
    choices = [o.strip() for o in text.split(",")]
    if not any(choices):
        raise FoveateError(f"--options {text!r} names no option: give them comma-separated, e.g. red,blue")
    return choices
