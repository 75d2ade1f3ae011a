"""``foveate serve``: the OpenAI chat-completions API in front of foveate's workflows (``foveate.server``).

One VLM is loaded and shared; each workflow is a model named ``foveate-<workflow>``. It binds 127.0.0.1
unless told otherwise: anyone who can reach the port can spend the model's time, so set ``--api-key``
(or ``$FOVEATE_API_KEY``) before binding to other hosts.

With ``--memory``, each memory namespace (a user, a project) has its own agents and its own view of the
memory: ``--api-keys FILE`` gives each key its namespace, and ``--namespace-header`` lets a proxy in front
choose it with ``X-Foveate-Namespace``. One embedding model is loaded for all of them.
"""

from __future__ import annotations

import json
import os
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer

from foveate.cli.common import EndpointOpt, FamilyOpt, ModelOpt, console, fail, load_model, settings_from
from foveate.cli.preflight import check_before_loading
from foveate.errors import FoveateError

__all__ = ["serve"]


def serve(
    workflow: Annotated[
        list[str] | None,
        typer.Option(
            "--workflow",
            "-w",
            help="A workflow to serve, as model foveate-NAME (built-in name or YAML); repeatable "
            "[default: direct, zoom and full].",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option("--host", help="The address to bind (0.0.0.0: every interface; set --api-key).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="The port to listen on.")] = 8000,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            help="Refuse requests without Authorization: Bearer KEY [default: $FOVEATE_API_KEY, else none].",
            show_default=False,
        ),
    ] = None,
    max_concurrency: Annotated[
        int,
        typer.Option("--max-concurrency", min=1, max=1024, help="Questions answered at once; more get 429."),
    ] = 8,
    max_total_tokens: Annotated[
        int | None,
        typer.Option(
            "--budget",
            "--max-total-tokens",
            min=1,
            max=10**12,
            help="The server's cap on all tokens one question spends; requests can only lower it "
            "[default: no cap].",
        ),
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option("--memory", help="Insight memory database [default: none: no recall, no remember]."),
    ] = None,
    checkpoints: Annotated[
        str | None,
        typer.Option(
            "--checkpoints",
            help="Run checkpoints: a SQLite file or PostgreSQL URL; give every process behind one address "
            "the same one, so that feedback reaches a run another answered [default: none: in RAM].",
            show_default=False,
        ),
    ] = None,
    local_files: Annotated[
        Path | None,
        typer.Option(
            "--local-files",
            help="A folder whose images requests may name by file:// URL (none outside it) "
            "[default: none: data: URIs only].",
            show_default=False,
            exists=True,
            file_okay=False,
        ),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            help="The memory namespace of requests with --api-key, or with no key at all [default: "
            "$FOVEATE_NAMESPACE, else the shared one].",
            show_default=False,
        ),
    ] = None,
    api_keys: Annotated[
        Path | None,
        typer.Option(
            "--api-keys",
            help='A JSON file of more keys, each with its memory namespace: {"KEY": "NAMESPACE", ...} '
            "[default: none].",
            show_default=False,
        ),
    ] = None,
    max_namespaces: Annotated[
        int,
        typer.Option(
            "--max-namespaces",
            min=1,
            help="Namespaces this server keeps agents for (each holds database connections); one more: 503.",
        ),
    ] = 64,
    namespace_header: Annotated[
        bool,
        typer.Option(
            "--namespace-header",
            help="Let the X-Foveate-Namespace header choose the namespace (behind a proxy that sets it) "
            "[default: off: refused].",
            show_default=False,
        ),
    ] = False,
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    family: FamilyOpt = None,
) -> None:
    """Serve foveate as an OpenAI-compatible endpoint (POST /v1/chat/completions, GET /v1/models), with
    feedback (POST /v1/foveate/feedback) and a web page at /."""
    try:
        import uvicorn

        from foveate.server import AgentsByNamespace, ServerLimits, create_app
    except ImportError as exc:  # FastAPI and uvicorn come with the serve extra
        raise fail(f"foveate serve needs {exc.name}: pip install 'foveate[serve]'") from None
    from pydantic import ValidationError

    from foveate.agent import Agent
    from foveate.memory import InsightMemory, SentenceTransformerEmbedder
    from foveate.memory.namespaces import check_namespace

    names = list(dict.fromkeys(workflow or ["direct", "zoom", "full"]))
    try:
        # the cap is the agents' own budget too: the gate each workflow uses is the one made for that budget
        settings = settings_from(
            model=model,
            endpoint=endpoint,
            family=family,
            memory_db=memory,
            checkpoints=checkpoints,
            namespace=namespace,
            max_total_tokens=max_total_tokens,
        )
        check_before_loading(
            settings, workflows=names, memory=memory is not None, checkpoints=checkpoints is not None
        )
        try:
            limits = ServerLimits(
                api_key=api_key or os.environ.get("FOVEATE_API_KEY") or None,
                api_keys=_read_keys(api_keys) if api_keys is not None else {},
                namespace=check_namespace(settings.namespace),
                namespace_header=namespace_header,
                local_files=local_files,
                max_namespaces=max_namespaces,
                max_concurrency=max_concurrency,
                max_total_tokens=max_total_tokens,
            )
        except ValidationError as exc:
            raise FoveateError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        served = {_served_as(name): name for name in names}
        if len(served) < len(names):
            raise FoveateError(
                f"two workflows would be served under one name ({', '.join(names)}): rename one"
            )
        vlm = load_model(settings)
        with ExitStack() as stack:
            embedder = SentenceTransformerEmbedder() if memory is not None else None

            def agents_of(space: str) -> dict[str, Agent]:
                """One memory (its namespace's view) shared by the namespace's agents, one per workflow;
                all closed again if any of them fails to open (a full connection pool), none kept."""
                with ExitStack() as making:
                    memory_of = None
                    if memory is not None:
                        memory_of = making.enter_context(
                            InsightMemory.open(memory, namespace=space, embedder=embedder)
                        )
                    made: dict[str, Agent] = {}
                    for model, name in served.items():
                        made[model] = Agent.from_defaults(
                            settings=settings,
                            vlm=vlm,
                            workflow=name,
                            memory=memory_of,
                            checkpoints=checkpoints,
                            coalesce=True,
                        )
                        making.callback(made[model].close)
                    stack.enter_context(making.pop_all())  # kept: closed when the server stops
                return made

            spaces = AgentsByNamespace(
                limits.namespace,
                agents_of(limits.namespace),
                agents_of if memory else None,
                limit=limits.max_namespaces,
            )
            key = "an API key" if limits.needs_key else "no API key"
            console.print(
                f"serving {', '.join(served)} on http://{host}:{port}/v1 ({vlm.model_id}; {key})",
                highlight=False,
            )
            uvicorn.run(create_app(spaces, limits), host=host, port=port, log_level="warning")
    except FoveateError as exc:
        raise fail(exc) from None


def _served_as(workflow: str) -> str:
    return f"foveate-{Path(workflow).stem if workflow.endswith(('.yaml', '.yml')) else workflow}"


def _read_keys(path: Path) -> dict[str, str]:
    """``--api-keys``: a JSON object of key -> namespace, each namespace checked."""
    from foveate.memory.namespaces import NamespaceError, check_namespace

    try:
        keys = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FoveateError(f"--api-keys {path}: cannot read it as JSON: {exc}") from None
    if not isinstance(keys, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
    ):
        raise FoveateError(
            f'--api-keys {path}: give a JSON object of key -> namespace, {{"KEY": "NAMESPACE"}}'
        )
    if any(len(k) < 8 for k in keys):
        raise FoveateError(f"--api-keys {path}: a key shorter than 8 characters is too easy to guess")
    try:
        return {k: check_namespace(v) for k, v in keys.items()}
    except NamespaceError as exc:
        raise FoveateError(f"--api-keys {path}: {exc}") from None
