"""``foveate calibrate``: calibrate conformal sets and abstention thresholds on a scene benchmark.

Each question's options are scored by the VLM on the whole image (one ``score`` call with the question as
the prompt, ``foveate.conformal.procedure.PROMPT_TEMPLATE``); ``foveate.conformal.procedure`` does the
rest: every method's calibration, stored in the calibration database (``calibration_db`` in
``foveate.settings``, the one ``foveate run --alpha`` reads) under the model id, the prompt template's hash,
alpha and the method, shown with its coverage / accuracy *on the calibration questions themselves*: an
in-sample check, not an estimate for new questions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from foveate.cli.common import FamilyOpt, console, err_console, fail, load_model, settings_from
from foveate.errors import FoveateError

__all__ = ["calibrate"]


def calibrate(
    bench: Annotated[Path, typer.Option("--bench", help="Benchmark folder (or its manifest.jsonl).")],
    alpha: Annotated[float, typer.Option("--alpha", help="Miscoverage / risk level, in (0, 1).")] = 0.1,
    model: Annotated[
        str | None, typer.Option("--model", help="Local model folder [default: the embedded tiny VLM].")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="OpenAI-compatible server URL instead of a local model.")
    ] = None,
    family: FamilyOpt = None,
    method: Annotated[
        str, typer.Option("--method", help="lac, aps, crc, ltt, or all.", case_sensitive=False)
    ] = "all",
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Calibration database: SQLite file or SQLAlchemy URL [default: $FOVEATE_CALIBRATION_DB, "
            "calibration_db in config.toml, else ~/.foveate/calibrations.db].",
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

    from foveate.conformal.procedure import METHODS, PROMPT_TEMPLATE, calibrate_methods, save_calibrations
    from foveate.conformal.records import CalibrationStore, template_hash
    from foveate.conformal.risk_control import SelectiveCalibration
    from foveate.synthetic import image_path, load_manifest
    from foveate.vlm import VLMRequest

    method = method.lower()
    methods = METHODS if method == "all" else (method,)
    if method != "all" and method not in METHODS:
        raise fail(f"unknown --method {method!r}: use {', '.join(METHODS)} or all")
    if not 0.0 < alpha < 1.0:
        raise fail(f"--alpha must be in (0, 1), got {alpha}")
    if not 0.0 < delta < 1.0:
        raise fail(f"--delta must be in (0, 1), got {delta}")
    try:
        settings = settings_from(model=model, endpoint=endpoint, family=family, calibration_db=db)
        items = load_manifest(bench)
        if limit is not None:
            items = items[:limit]
        if not items:
            raise fail(f"benchmark {bench} has no questions")
        store = CalibrationStore(settings.calibration_db)  # before the model: a bad database fails fast
        vlm = load_model(settings)
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
        results = calibrate_methods(probs, labels, alpha, methods, delta=delta)
        with store:
            saved = save_calibrations(store, results, vlm.model_id)
    except FoveateError as exc:
        raise fail(exc) from None
    except OSError as exc:
        raise fail(exc) from None
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
    for result, record in zip(results, saved, strict=True):
        if isinstance(result.result, SelectiveCalibration):
            coverage = "-"
            size = f"{result.answered:.3f} ({result.result.answered}/{result.result.n})"
            accuracy = (
                f"{result.selective_accuracy:.3f}"
                if result.selective_accuracy is not None
                else "- (none answered)"
            )
        else:
            coverage, size, accuracy = f"{result.coverage:.3f}", f"{result.mean_set_size:.2f}", "-"
        table.add_row(
            result.method,
            f"{alpha:g}",
            str(len(items)),
            result.threshold_text,
            coverage,
            size,
            accuracy,
            str(record.id),
        )
    console.print(table)
    correct = float((probs.argmax(axis=1) == labels).mean())
    digest = template_hash(PROMPT_TEMPLATE)
    console.print(
        f"model: {vlm.model_id}  top-option accuracy: {correct:.3f}  "
        f"prompt template sha256: {digest[:12]}…  saved to {store.name}"
    )
