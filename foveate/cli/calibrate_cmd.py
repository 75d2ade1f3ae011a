"""``foveate calibrate``: calibrate the abstention gate on the answers it will gate.

It builds the agent that will answer (``Agent.from_defaults``: the model, the workflow and the budget of the
flags and ``foveate.settings``), with no gate and no insight memory, runs it on labelled questions (a JSON
Lines file of ``{image, question, options?, answer, category?}``, a scene benchmark folder, or ``--synthetic
N`` scenes made on the fly), and calibrates its final answers: multiple-choice ones by ``--method``,
free-text ones (questions without options, or every question once more without them with ``--free-text``)
by conformal risk control on their sequence confidence. The gate is stored in the calibration database
(``calibration_db``, the one ``foveate run --alpha`` and ``Agent.from_defaults`` read) keyed by the model,
its weights, the workflow's spec, its strategies and the budget; ``--ship`` also writes it beside the
model's weights (``foveate_gates.json``), where ``Agent.from_defaults`` finds it without ``--alpha``.
The table shows each calibration *on the calibration questions themselves*: an in-sample check, not an
estimate for new questions (docs/benchmarks/abstention.md has those).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from foveate.cli.common import (
    FamilyOpt,
    TotalCapOpt,
    VisualCapOpt,
    console,
    fail,
    load_model,
    settings_from,
)
from foveate.cli.preflight import check_before_loading
from foveate.cli.progress import question_progress
from foveate.errors import FoveateError

if TYPE_CHECKING:
    from foveate.conformal.answer_gate import AnswerGate, OptionsCalibration
    from foveate.conformal.procedure import LabelledScore

__all__ = ["calibrate"]


def calibrate(
    questions: Annotated[
        Path | None,
        typer.Option(
            "--questions",
            "--bench",
            help="Labelled questions: a JSONL file of {image, question, options?, answer, category?} "
            "(images relative to the file), or a scene benchmark folder (foveate bench make) "
            "[default: none: give this or --synthetic].",
        ),
    ] = None,
    synthetic: Annotated[
        int | None,
        typer.Option(
            "--synthetic",
            min=1,
            help="Instead: N synthetic scenes made now (see --seed) [default: none: give this or "
            "--questions].",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="With --synthetic: the scenes' seed.")] = 5,
    workflow: Annotated[
        str | None,
        typer.Option("--workflow", "-w", help="The workflow that will answer [default: full]."),
    ] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Risk level, in (0, 1).")] = 0.1,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="For multiple-choice answers: lac, aps, crc or ltt; several comma-separated make one gate "
            "each from the same answers.",
            case_sensitive=False,
        ),
    ] = "lac",
    by_category: Annotated[
        bool,
        typer.Option(
            "--by-category", help="Also one calibration per question category (Mondrian) [default: off]."
        ),
    ] = False,
    free_text: Annotated[
        bool,
        typer.Option(
            "--free-text", help="Also ask each multiple-choice question without its options [default: off]."
        ),
    ] = False,
    model: Annotated[
        str | None, typer.Option("--model", help="Local model folder [default: the embedded tiny VLM].")
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            help="OpenAI-compatible server URL instead of a local model [default: $FOVEATE_ENDPOINT, else "
            "the local model].",
        ),
    ] = None,
    family: FamilyOpt = None,
    max_total_tokens: TotalCapOpt = None,
    max_visual_tokens: VisualCapOpt = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Calibration database: SQLite file or SQLAlchemy URL [default: $FOVEATE_CALIBRATION_DB, "
            "calibration_db in config.toml, else ~/.foveate/calibrations.db].",
            show_default=False,
        ),
    ] = None,
    ship: Annotated[
        bool,
        typer.Option(
            "--ship", help="Also write the gate into the model folder's foveate_gates.json [default: off]."
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Also write the gate as JSON here (one --method) [default: none: the database only].",
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Use only the first N questions [default: all].")
    ] = None,
    delta: Annotated[float, typer.Option("--delta", help="Learn then Test failure probability.")] = 0.1,
) -> None:
    """Calibrate the abstention gate of a workflow on labelled questions (its own final answers)."""
    from foveate.agent import Agent
    from foveate.conformal.procedure import METHODS, calibrate_gate, save_gate
    from foveate.conformal.records import CalibrationStore
    from foveate.conformal.shipped import write_gates
    from foveate.evaluation.calibration import score_questions
    from foveate.evaluation.labelled import load_labelled
    from foveate.synthetic import make_benchmark

    methods = [m.strip() for m in method.lower().split(",") if m.strip()]
    for name in methods or [method]:
        if name not in METHODS:
            raise fail(f"unknown --method {name!r}: use {', '.join(METHODS)}")
    if not 0.0 < alpha < 1.0:
        raise fail(f"--alpha must be in (0, 1), got {alpha}")
    if not 0.0 < delta < 1.0:
        raise fail(f"--delta must be in (0, 1), got {delta}")
    if out is not None and len(methods) > 1:
        raise fail("--out writes one gate: give one --method with it")
    if out is not None and (not str(out).strip() or out.is_dir() or not out.parent.is_dir()):
        # checked now, not after the whole calibration (whose gate would already be in the database)
        raise fail(f"--out {out} cannot be written: name a file in an existing folder")
    if (questions is None) == (synthetic is None):
        raise fail("give the labelled questions: --questions FILE_OR_FOLDER, or --synthetic N")
    try:
        settings = settings_from(
            model=model,
            endpoint=endpoint,
            family=family,
            workflow=workflow,
            calibration_db=db,
            max_total_tokens=max_total_tokens,
            max_visual_tokens=max_visual_tokens,
        )
        # before the scenes are drawn and the database is made: a wrong workflow leaves nothing behind
        check_before_loading(settings, memory=False, checkpoints=False, calibration=False)
        with tempfile.TemporaryDirectory(prefix="foveate-calibrate-") as scratch:
            if synthetic is not None:
                make_benchmark(Path(scratch), synthetic, seed)
                labelled = load_labelled(scratch, max_options=settings.max_options)
                source = f"synthetic scenes, seed {seed}, n {synthetic}"
            else:
                assert questions is not None
                labelled = load_labelled(questions, max_options=settings.max_options)
                source = str(questions)
            if limit is not None:
                labelled = labelled[:limit]
            store = CalibrationStore(settings.calibration_db)  # before the model: a bad database fails fast
            vlm = load_model(settings)
            agent = Agent.from_defaults(
                settings=settings, vlm=vlm, memory=None, checkpoints=None, calibration=None
            )
            with agent, question_progress() as bar:
                task = bar.add_task("calibrating", total=len(labelled))
                scores = score_questions(
                    agent,
                    labelled,
                    free_text=free_text,
                    progress=lambda i, n: bar.update(task, completed=i - 1, total=n),  # called as i starts
                )
                bar.update(task, completed=len(labelled))
            gates = [
                calibrate_gate(
                    scores, alpha, m, key=agent.gate_key, by_category=by_category, delta=delta, source=source
                )
                for m in methods
            ]
        with store:
            records = [save_gate(store, gate) for gate in gates]
        if ship:
            if not Path(vlm.model_id).is_dir():
                raise FoveateError(f"--ship needs a local model folder; {vlm.model_id} is not one")
            write_gates(vlm.model_id, gates)
        if out is not None:
            out.write_text(gates[0].to_json() + "\n", encoding="utf-8")
    except (FoveateError, OSError) as exc:
        raise fail(exc) from None
    for gate in gates:
        _show(gate, scores)
    key = agent.gate_key
    console.print(
        f"model: {key.model_id}  workflow: {key.workflow} ({key.strategy})  saved to {store.name} "
        f"(record {', '.join(str(r.id) for r in records)})"
        + ("  and shipped beside the weights" if ship else ""),
        highlight=False,
        soft_wrap=True,
    )


def _show(gate: AnswerGate, scores: list[LabelledScore]) -> None:
    """Each calibration of the gate, with how it does on its own calibration questions."""
    table = Table(
        f"answers ({gate.method}, alpha {gate.alpha:g})",
        "category",
        "n",
        "threshold",
        "answered*",
        "accuracy when answered*",
        caption="* on the calibration questions themselves (in-sample), not an estimate for new ones",
    )
    rows: list[tuple[str, str | None, OptionsCalibration | None]] = [
        ("options", None, gate.options),
        ("free_text", None, gate.free_text),
    ]
    rows += [("options", c, cal) for c, cal in gate.options_by_category.items()]
    rows += [("free_text", c, cal) for c, cal in gate.free_text_by_category.items()]
    for form, category, cal in rows:
        if cal is None:
            continue
        mine = [
            s
            for s in scores
            if s.is_options == (form == "options") and (category is None or s.category == category)
        ]
        answered, right = 0, 0
        for s in mine:
            decision = (
                gate.decide_free_text("x", s.confidence, category=category)
                if form == "free_text"
                else gate.decide(
                    [str(i) for i in range(len(s.probabilities))], s.probabilities, category=category
                )
            )
            if decision.action == "answer":
                answered += 1
                ok = s.correct if form == "free_text" else decision.answer == str(s.label)
                right += int(bool(ok))
        kind = "crc" if form == "free_text" else gate.method
        threshold = cal.threshold
        table.add_row(
            f"{form} ({kind})",
            category or "all",
            str(len(mine)),
            f"{threshold:.4g}",
            f"{answered / len(mine):.3f}" if mine else "-",
            f"{right / answered:.3f}" if answered else "- (none answered)",
        )
    console.print(table)
