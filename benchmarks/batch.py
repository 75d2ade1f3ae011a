"""``foveate batch`` throughput on the tiny VLM: ``python -m benchmarks.batch``.

One question file of synthetic scenes (plain world, seed 33: not a zoom tuning seed, 7 and 8) answered
through the ``zoom`` workflow by the same code ``foveate batch`` runs (``Answerers`` + ``answer_file``), one
question at a time and with ``--concurrency`` in flight, in each way of running questions at once:
the one ``foveate batch`` chooses for this model (``choose_mode``), and the others forced. Wall time counts
from the first question to the last answer written, worker start-up included; the modes alternate over
``--repeats`` rounds so that a slow spell of a shared machine falls on all of them. Every mode's answers
are checked against the one-at-a-time answers. Writes ``docs/benchmarks/batch.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks import write_page
from foveate.evaluation.batch import answer_file
from foveate.evaluation.datasets import read_question_file
from foveate.evaluation.results_file import ResultsFile
from foveate.evaluation.workers import AgentRecipe, Answerers, Mode, choose_mode
from foveate.settings import FoveateSettings
from foveate.synthetic.formats import write_jsonl
from foveate.tiny_vlm import TINY_VLM_PATH, model_label
from foveate.vlm.transformers_vlm import TransformersVLM


def run_once(
    vlm: TransformersVLM, recipe: AgentRecipe, questions: Path, out: Path, concurrency: int, mode: Mode | None
) -> tuple[float, dict[str, str | None], str]:
    """Seconds to answer the file, each question's chosen option, and how it ran."""
    items, problems = read_question_file(questions)
    assert not problems
    with (
        Answerers(vlm, {"batch": recipe}, concurrency=concurrency, mode=mode) as answerers,
        ResultsFile(out, lambda line: str(line["id"])) as results,
    ):
        results.open(resume=False)
        outcome = answer_file(items, answerers, results, done=set(), concurrency=concurrency)
        how = answerers.describe()
    assert outcome.answered == len(items) and not outcome.retry

    chosen = {}
    for line in out.read_text().splitlines():
        data = json.loads(line)
        chosen[data["id"]] = data["option"]
    return outcome.wall_s, chosen, how


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=120, help="questions (scenes of seed --seed)")
    parser.add_argument("--seed", type=int, default=33, help="scene seed (not a zoom tuning seed: 7, 8)")
    parser.add_argument("--workflow", default="zoom")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/batch.md"))
    args = parser.parse_args(argv)

    vlm = TransformersVLM(TINY_VLM_PATH, device="cpu")
    settings = FoveateSettings(model=str(TINY_VLM_PATH), workflow=args.workflow)
    recipe = AgentRecipe(settings, args.workflow, overrides={"memory": None, "checkpoints": None})
    chosen_mode, _ = choose_mode(vlm, args.concurrency)
    modes: list[tuple[str, int, Mode | None]] = [("one at a time", 1, None)]
    modes.append(
        (f"{args.concurrency} in flight, as foveate batch chooses ({chosen_mode})", args.concurrency, None)
    )
    for forced in ("coalesced", "threads", "processes"):
        if forced != chosen_mode:
            modes.append((f"{args.concurrency} in flight, forced {forced}", args.concurrency, forced))  # type: ignore[arg-type]
    walls: dict[str, list[float]] = {name: [] for name, _, _ in modes}
    hows: dict[str, str] = {}
    same: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        questions = write_jsonl(
            folder / "q" / "questions.jsonl", args.n, seed=args.seed, size_range=(1536, 2048)
        )
        reference: dict[str, str | None] | None = None
        for round_no in range(args.repeats):
            order = modes if round_no % 2 == 0 else list(reversed(modes))
            for name, concurrency, mode in order:
                out = folder / f"answers-{round_no}-{len(walls[name])}-{concurrency}-{mode}.jsonl"
                wall, chosen, how = run_once(vlm, recipe, questions, out, concurrency, mode)
                print(f"round {round_no}: {name}: {wall:.1f} s ({how})", flush=True)
                walls[name].append(wall)
                hows[name] = how
                if name == "one at a time" and reference is None:
                    reference = chosen
                if reference is not None:
                    same[name] = min(
                        same.get(name, args.n), sum(chosen[k] == reference[k] for k in reference)
                    )

    base = np.array(walls["one at a time"])
    lines = [
        "# `foveate batch` throughput: questions in flight on the tiny VLM",
        "",
        f"Command: `python -m benchmarks.batch --n {args.n} --seed {args.seed} --workflow {args.workflow} "
        f"--concurrency {args.concurrency} --repeats {args.repeats}`",
        "",
        f"Model: {model_label(TINY_VLM_PATH)} on CPU. Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads in the parent process. "
        f"{args.n} questions of the plain world (seed {args.seed}, 1536-2048 px scenes), workflow "
        f"`{args.workflow}` with its shipped gate, no memory. Wall time from the first question to the last "
        "answer written (worker processes' start-up included), each mode run once per round, "
        f"{args.repeats} rounds in alternating order.",
        "",
        "| mode | how | wall s per round | questions / s (mean) | x one at a time (per round: min-max) | "
        "same options as one at a time |",
        "|---|---|---|---|---|---|",
    ]
    for name, _, _ in modes:
        w = np.array(walls[name])
        ratio = base / w
        lines.append(
            f"| {name} | {hows[name]} | {', '.join(f'{x:.1f}' for x in w)} | {np.mean(args.n / w):.2f} | "
            f"{ratio.mean():.2f} ({ratio.min():.2f}-{ratio.max():.2f}) | {same[name]}/{args.n} |"
        )
    auto = f"{args.concurrency} in flight, as foveate batch chooses ({chosen_mode})"

    def times(name: str) -> float:
        return float(np.mean(base / np.array(walls[name])))

    ratio = base / np.array(walls[auto])
    others = "; ".join(f"{name.split(', ')[-1]}: {times(name):.2f}x" for name, _, _ in modes[2:])
    lines += [
        "",
        "## What this shows",
        "",
        f"- `foveate batch --concurrency {args.concurrency}` answered at {ratio.mean():.2f}x the questions "
        f"per second of `--concurrency 1` (rounds: {', '.join(f'{r:.2f}' for r in ratio)}); "
        f"{same[auto]}/{args.n} questions got the same option.",
        f"- The other ways, forced: {others}. In one process the local backend runs one model call at a time "
        "and the Python around the calls holds the GIL, so threads cannot use a second core for a CPU model; "
        "on a GPU or against a server the model's work happens outside Python and threads are the right way "
        "(foveate batch chooses by where the model runs).",
        "- Worker start-up (a fresh Python importing torch and loading the model, a few seconds each) is in "
        "the wall time: on a short file it eats the gain.",
        "",
    ]
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
