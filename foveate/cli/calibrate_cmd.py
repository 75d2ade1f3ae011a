"""``foveate calibrate``: calibrate conformal sets and abstention thresholds on a scene benchmark.

Each question's options are scored by the VLM on the whole image (one ``score`` call with the
question as the prompt, ``PROMPT_TEMPLATE``); the option probabilities then go to
``foveate.conformal``: split conformal sets (LAC, APS) and answer-or-abstain thresholds on the
top option's probability (conformal risk control, Learn then Test). Each result is stored in a
calibration database (``foveate.conformal.records``) under the model id, the SHA-256 of the
prompt template, alpha and the method, and shown with its coverage / accuracy *on the
calibration questions themselves*: an in-sample check, not an estimate for new questions.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from foveate.errors import FoveateError

PROMPT_TEMPLATE = "{question}"
CALIBRATION_DB_ENV = "FOVEATE_CALIBRATION_DB"
CLI_METHODS = ("lac", "aps", "crc", "ltt")

console = Console()
err_console = Console(stderr=True)


def default_calibration_db() -> str:
    """``$FOVEATE_CALIBRATION_DB``, else ``~/.foveate/calibrations.db``."""
    return os.environ.get(CALIBRATION_DB_ENV) or str(Path.home() / ".foveate" / "calibrations.db")


def _fail(exc: BaseException | str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _threshold_text(value: float, selective: bool) -> str:
    if math.isinf(value) and value > 0:
        return "inf (answer none)" if selective else "inf (every option)"
    if math.isinf(value):
        return "-inf (answer all)"
    return f"{value:.4f}"


def calibrate(
    bench: Annotated[Path, typer.Option("--bench", help="Benchmark folder (or its manifest.jsonl).")],
    alpha: Annotated[float, typer.Option("--alpha", help="Miscoverage / risk level, in (0, 1).")] = 0.1,
    model: Annotated[
        str | None, typer.Option("--model", help="Local model folder [default: the embedded tiny VLM].")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="OpenAI-compatible server URL instead of a local model.")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="lac, aps, crc, ltt, or all.", case_sensitive=False)
    ] = "all",
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help=f"Calibration database: SQLite file or SQLAlchemy URL [default: ${CALIBRATION_DB_ENV}, "
            "else ~/.foveate/calibrations.db].",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Use only the first N questions.")
    ] = None,
    delta: Annotated[float, typer.Option("--delta", help="Learn then Test failure probability.")] = 0.1,
) -> None:
    """Calibrate conformal sets (LAC, APS) and abstention thresholds (CRC, LTT) on a benchmark."""
    import numpy as np

    from foveate.cli.main import _load_vlm
    from foveate.conformal import calibrate as conformal_calibrate
    from foveate.conformal import crc_threshold, ltt_threshold
    from foveate.conformal.records import CalibrationRecord, CalibrationStore, template_hash
    from foveate.fixtures.scenes import image_path, load_manifest
    from foveate.vlm import VLMRequest

    method = method.lower()
    methods = CLI_METHODS if method == "all" else (method,)
    if method != "all" and method not in CLI_METHODS:
        raise _fail(f"unknown --method {method!r}: use {', '.join(CLI_METHODS)} or all")
    if not 0.0 < alpha < 1.0:
        raise _fail(f"--alpha must be in (0, 1), got {alpha}")
    if not 0.0 < delta < 1.0:
        raise _fail(f"--delta must be in (0, 1), got {delta}")
    try:
        items = load_manifest(bench)
        if limit is not None:
            items = items[:limit]
        if not items:
            raise _fail(f"benchmark {bench} has no questions")
        store = CalibrationStore(db or default_calibration_db())  # before the model: a bad db fails fast
        vlm = _load_vlm(model, endpoint)
        rows: list[list[float]] = []
        with err_console.status("scoring") as status:
            for i, item in enumerate(items, start=1):
                status.update(f"scoring question {i}/{len(items)}")
                request = VLMRequest.from_prompt(
                    PROMPT_TEMPLATE.format(question=item.question), [image_path(item, bench)]
                )
                rows.append(list(vlm.score(request, item.options).probabilities))
        width = max(len(r) for r in rows)  # questions with fewer options: the missing ones have p = 0
        probs = np.array([r + [0.0] * (width - len(r)) for r in rows], dtype=np.float64)
        labels = np.array([item.answer_index for item in items], dtype=np.int64)
        top = probs.max(axis=1)
        correct = probs.argmax(axis=1) == labels
        digest = template_hash(PROMPT_TEMPLATE)

        table = Table(
            "method",
            "alpha",
            "n",
            "threshold",
            "coverage*",
            "mean set size* / answered*",
            "selective accuracy*",
            "record",
            caption="* on the calibration questions themselves (in-sample), not an estimate for new ones",
        )
        with store:
            for name in methods:
                if name in ("lac", "aps"):
                    result = conformal_calibrate(probs, labels, alpha, name)
                    sets = result.prediction_sets(probs)
                    coverage = f"{sets[np.arange(len(labels)), labels].mean():.3f}"
                    size, accuracy = f"{sets.sum(axis=1).mean():.2f}", "-"
                    threshold = _threshold_text(result.threshold, selective=False)
                    saved = store.save(
                        CalibrationRecord.from_result(result, model_id=vlm.model_id, template_sha256=digest)
                    )
                else:
                    selective = (
                        crc_threshold(top, correct, alpha)
                        if name == "crc"
                        else ltt_threshold(top, correct, alpha, delta)
                    )
                    answered = selective.answer_mask(top)
                    coverage = "-"
                    size = f"{answered.mean():.3f} ({selective.answered}/{selective.n})"
                    accuracy = f"{correct[answered].mean():.3f}" if answered.any() else "- (none answered)"
                    threshold = _threshold_text(selective.threshold, selective=True)
                    saved = store.save(
                        CalibrationRecord.from_result(
                            selective, model_id=vlm.model_id, template_sha256=digest
                        )
                    )
                table.add_row(
                    name, f"{alpha:g}", str(len(items)), threshold, coverage, size, accuracy, str(saved.id)
                )
    except FoveateError as exc:
        raise _fail(exc) from None
    except OSError as exc:
        raise _fail(exc) from None
    console.print(table)
    console.print(
        f"model: {vlm.model_id}  top-option accuracy: {correct.mean():.3f}  "
        f"prompt template sha256: {digest[:12]}…  saved to {store.name}"
    )
