"""A ``foveate eval`` results folder: ``protocol.json``, ``results.jsonl``, ``report.md`` and
``accuracy_vs_tokens.png``, made (or continued, with ``resume``) by ``run_eval``.

A folder that already holds results is never overwritten: without ``resume`` it is refused, and with it the
protocol must match the stored one (model, weights, workflows, budget, format, limit).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from pydantic import ValidationError

from foveate.errors import ManifestError
from foveate.evaluation.datasets import BenchQuestion
from foveate.evaluation.evaluate import EvalEntry, EvalRecord, Progress, evaluate, record_key
from foveate.evaluation.protocol import EvalProtocol, OptionFormat, input_resolution
from foveate.evaluation.report import write_plot, write_report
from foveate.evaluation.results_file import ResultsFile
from foveate.evaluation.workers import AgentRecipe, Answerers, is_server
from foveate.imaging.images import load_image
from foveate.settings import FoveateSettings
from foveate.vlm.base import VLM
from foveate.vlm.loading import load_vlm

__all__ = ["EvalOutcome", "read_records", "run_eval"]


def read_records(path: Path) -> list[EvalRecord]:
    """The records of a ``results.jsonl``, each validated (``FILE:LINE`` on a bad one)."""
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                out.append(EvalRecord.model_validate_json(line))
            except ValidationError as exc:
                raise ManifestError(
                    f"{path}:{lineno}: not a results line ({exc.errors()[0]['msg']})"
                ) from None
    return out


class EvalOutcome:
    """What ``run_eval`` did: the folder's files and how many questions it answered now."""

    def __init__(self, out: Path, answered: int, records: list[EvalRecord], report: str) -> None:
        self.out = out
        self.answered = answered
        self.records = records
        self.report = report

    @property
    def results(self) -> Path:
        return self.out / "results.jsonl"

    @property
    def plot(self) -> Path:
        return self.out / "accuracy_vs_tokens.png"


def results_folder(out: Path) -> Path:
    """``out`` when it can hold an evaluation's files: named, and a folder if anything is there."""
    if not str(out).strip():
        raise ManifestError("the --out folder is empty: name a folder for the results")
    if out.exists() and not out.is_dir():
        raise ManifestError(f"--out {out} is a file, not a folder: name a folder for the results")
    return out


def run_eval(
    questions: Sequence[BenchQuestion],
    settings: FoveateSettings,
    entries: Sequence[EvalEntry],
    out: Path,
    *,
    fmt: str,
    source: str,
    vlm: VLM | None = None,
    limit: int | None = None,
    options: OptionFormat | None = None,
    concurrency: int = 1,
    resume: bool = False,
    command: str = "",
    progress: Progress | None = None,
) -> EvalOutcome:
    """Answer ``questions`` with every entry (direct first) on the model of ``settings`` (or ``vlm``, the
    model it names, already loaded), writing into ``out``; then the report and the plot. ``options``: how
    multiple-choice options are asked (None: ``letters`` on a server, which scores first tokens only, else
    ``texts``)."""
    if not questions:
        raise ManifestError(f"no questions to evaluate in {source}")
    vlm = vlm or load_vlm(
        settings.model, settings.endpoint, family=settings.family, **settings.backend_options()
    )
    options = options or ("letters" if is_server(vlm) else "texts")
    recipes = {
        entry.label: AgentRecipe(
            settings, entry.spec, gate=False, overrides={"memory": None, "checkpoints": None}
        )
        for entry in entries
    }
    results_folder(out).mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        answerers = stack.enter_context(
            Answerers(vlm, recipes, concurrency=concurrency, letters=options == "letters")
        )
        budget = next(iter(answerers.agents.values())).budget
        size = load_image(questions[0].image).size
        protocol = EvalProtocol(
            format=fmt,
            path=source,
            limit=limit,
            options=options,
            model_id=vlm.model_id,
            resolution=input_resolution(vlm, budget, size),
            budget=budget.model_dump(mode="json", exclude_defaults=True),
            entries={label: agent.gate_key for label, agent in answerers.agents.items()},
        )
        stored = out / "protocol.json"
        results = stack.enter_context(ResultsFile(out / "results.jsonl", record_key))
        kept = protocol
        if resume and stored.is_file():
            earlier = EvalProtocol.model_validate_json(stored.read_text(encoding="utf-8"))
            protocol.check_resume(earlier)
            kept = protocol.model_copy(update={"entries": {**earlier.entries, **protocol.entries}})
        done = results.done(results.open(resume=resume))
        stored.write_text(json.dumps(kept.model_dump(mode="json"), indent=2) + "\n", encoding="utf-8")
        answerers.wait_ready()  # each entry's questions per second without the workers' start-up
        answered = evaluate(
            questions, answerers, results, done=done, concurrency=concurrency, progress=progress
        )
        how = answerers.describe()
    records = read_records(out / "results.jsonl")
    wanted = {q.id for q in questions}
    records = [r for r in records if r.question_id in wanted and r.entry in recipes]
    report = write_report(out, protocol, records, command=command, concurrency=concurrency, how=how)
    write_plot(out / "accuracy_vs_tokens.png", records, f"{fmt}: accuracy against tokens")
    return EvalOutcome(out, answered, records, report)
