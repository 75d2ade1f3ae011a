"""``foveate serve``: the OpenAI chat-completions API in front of foveate's workflows (``foveate.server``).

One VLM is loaded and shared; each workflow is a model named ``foveate-<workflow>``. It binds 127.0.0.1
unless told otherwise: anyone who can reach the port can spend the model's time, so set ``--api-key``
(or ``$FOVEATE_API_KEY``) before binding to other hosts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

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
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    family: FamilyOpt = None,
) -> None:
    """Serve foveate as an OpenAI-compatible endpoint: POST /v1/chat/completions, GET /v1/models."""
    try:
        import uvicorn

        from foveate.server import ServerLimits, create_app
    except ImportError as exc:  # FastAPI and uvicorn come with the serve extra
        raise fail(f"foveate serve needs {exc.name}: pip install 'foveate[serve]'") from None
    from foveate.agent import Agent

    names = list(dict.fromkeys(workflow or ["direct", "zoom", "full"]))
    try:
        # the cap is the agents' own budget too: the gate each workflow uses is the one made for that budget
        settings = settings_from(
            model=model, endpoint=endpoint, family=family, memory_db=memory, max_total_tokens=max_total_tokens
        )
        check_before_loading(settings, workflows=names, memory=memory is not None, checkpoints=False)
        limits = ServerLimits(
            api_key=api_key or os.environ.get("FOVEATE_API_KEY") or None,
            max_concurrency=max_concurrency,
            max_total_tokens=max_total_tokens,
        )
        vlm = load_model(settings)
        agents: dict[str, Any] = {}
        for name in names:
            served = f"foveate-{Path(name).stem if name.endswith(('.yaml', '.yml')) else name}"
            if served in agents:
                raise FoveateError(f"two workflows would both be served as {served}: rename one file")
            agents[served] = Agent.from_defaults(
                settings=settings, vlm=vlm, workflow=name, memory=memory, checkpoints=None, coalesce=True
            )
    except FoveateError as exc:
        raise fail(exc) from None
    key = "an API key" if limits.api_key else "no API key"
    console.print(
        f"serving {', '.join(agents)} on http://{host}:{port}/v1 ({vlm.model_id}; {key})", highlight=False
    )
    try:
        uvicorn.run(create_app(agents, limits), host=host, port=port, log_level="warning")
    finally:
        for agent in agents.values():
            agent.close()
