"""``foveate call``: one model call about one image, no agents (``foveate run`` runs a workflow)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from foveate.cli.common import (
    EndpointOpt,
    FamilyOpt,
    JsonOpt,
    ModelOpt,
    TotalCapOpt,
    VisualCapOpt,
    console,
    fail,
    load_model,
    settings_from,
    split_options,
)
from foveate.errors import FoveateError

__all__ = ["call"]


def call(
    image: Annotated[Path, typer.Argument(help="Image file.")],
    question: Annotated[str, typer.Argument(help="The question.")],
    options: Annotated[
        str | None,
        typer.Option(
            "--options",
            help="Comma-separated answer options, scored, not generated [default: none: the answer is "
            "generated].",
        ),
    ] = None,
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    family: FamilyOpt = None,
    max_visual_tokens: VisualCapOpt = None,
    max_total_tokens: TotalCapOpt = None,
    max_new_tokens: Annotated[
        int, typer.Option(min=1, max=32768, help="Most tokens to generate (free-text answers).")
    ] = 64,
    as_json: JsonOpt = False,
) -> None:
    """One model call about one image: score the options, or generate an answer (no search, no workflow)."""
    from foveate.graphs.state import RunInput
    from foveate.vlm import TokenBudget, TokenLedger, VLMRequest

    try:
        settings = settings_from(
            model=model,
            endpoint=endpoint,
            family=family,
            max_total_tokens=max_total_tokens,
            max_visual_tokens=max_visual_tokens,
        )
        choices = split_options(options)
        checks = {"question": question, "image": image, "options": choices}  # the checks `run` makes
        RunInput.checked(max_options=settings.max_options, **checks)
        budget = TokenBudget(
            max_visual_tokens_per_image=settings.max_visual_tokens, max_total_tokens=settings.max_total_tokens
        )
        request = VLMRequest.from_prompt(question, [image], budget=budget, max_new_tokens=max_new_tokens)
        vlm = load_model(settings)
        ledger = TokenLedger(budget)
        if as_json:  # one object: the answer, each option's probability, the tokens spent
            out: dict[str, Any] = {"question": question, "model_id": vlm.model_id}
            if choices:
                scored = vlm.score(request, choices, ledger)
                out |= {"answer": scored.best, "options": scored.options}
                # JSON has no -Infinity: an option the model gives no chance is null
                finite = [lp if math.isfinite(lp) else None for lp in scored.logprobs]
                out |= {"logprobs": finite, "probabilities": scored.probabilities}
            else:
                out["answer"] = vlm.generate(request, ledger).text
            typer.echo(json.dumps({**out, "tokens": ledger.spent.model_dump()}))
            return
        if choices:
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
        raise fail(exc) from None
