"""Calibrate the abstention gate on your own labelled images, save it, and answer new questions with it.

    .venv/bin/python examples/calibrate_your_own.py [--out DIR] [--alpha 0.1]

1. Labelled data: a folder of images and a ``labels.jsonl``, one question per line (``options`` and
   ``category`` are optional; without options the answer is free text)::

       {"image": "images/q000.png", "question": "...", "options": ["...", "..."], "answer": "...",
        "category": "..."}

   Here 52 generated scenes stand in for yours (the first 40 calibrate, the last 12 are "new").
2. Answer the calibration questions with the agent that will answer later (the gate holds for one model,
   one workflow and one budget, and is keyed by them: another agent refuses it), with and without the
   options (``free_text=True``), so that free-text answers are gated too.
3. Calibrate an ``AnswerGate`` (conformal risk control: ``P(answered and wrong) <= alpha`` for
   multiple-choice answers on the top probability and for free-text ones on their sequence confidence)
   and save it as JSON. ``foveate calibrate --questions labels.jsonl`` does steps 2 and 3 in one command.
4. Load it back into ``Agent(calibration=...)``: it answers only above the thresholds and says why when it
   abstains. (``foveate run ... --calibration FILE`` loads the same file.)

Runs offline on the embedded tiny VLM, with the one-call ``direct`` workflow to keep it fast.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from foveate import Agent
from foveate.conformal import SelectiveCalibration
from foveate.conformal.matching import matches
from foveate.conformal.procedure import calibrate_gate, load_calibration_file
from foveate.evaluation.calibration import score_questions
from foveate.evaluation.labelled import load_labelled
from foveate.synthetic import generate_scene
from foveate.vlm import load_vlm

N_CALIBRATION, N_NEW = 40, 12


def make_labelled_data(folder: Path) -> Path:
    """Stand-in for your data: small scenes (512-768 px) so that the tiny model sees some targets."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for index in range(N_CALIBRATION + N_NEW):
        image, item = generate_scene(seed=11, index=index, size_range=(512, 768))
        name = f"images/q{index:03d}.png"
        image.save(folder / name, compress_level=1)
        row = {
            "image": name,
            "question": item.question,
            "options": item.options,
            "answer": item.answer,
            "category": item.category,
        }
        lines.append(json.dumps(row))
    labels = folder / "labels.jsonl"
    labels.write_text("\n".join(lines) + "\n")
    return labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="Folder for the data and the gate [temporary].")
    parser.add_argument("--alpha", type=float, default=0.1, help="Risk level: P(answered and wrong).")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="foveate-calibrate-")  # used when no --out
    out: Path = args.out or Path(scratch.name)
    out.mkdir(parents=True, exist_ok=True)

    questions = load_labelled(make_labelled_data(out))
    calibration, new = questions[:N_CALIBRATION], questions[N_CALIBRATION:]
    print(f"labelled data: {len(questions)} questions in {out / 'labels.jsonl'}")

    vlm = load_vlm()  # the embedded tiny VLM, on the CPU

    # 2. Answer the calibration questions with the agent that will answer (no gate yet, no memory).
    with Agent(vlm, workflow="direct", memory=None, calibration=None) as agent:
        scores = score_questions(agent, calibration, free_text=True)
        key = agent.gate_key
    right = sum(
        bool(s.correct) if s.label is None else s.probabilities.index(max(s.probabilities)) == s.label
        for s in scores
    )
    print(
        f"calibration: {len(scores)} answers ({len(calibration)} questions, with and without options), "
        f"{right} right"
    )

    # 3. Calibrate and save.
    gate = calibrate_gate(scores, args.alpha, "crc", key=key, source=str(out / "labels.jsonl"))
    assert isinstance(gate.options, SelectiveCalibration) and gate.free_text is not None
    gate_file = out / "gate.json"
    gate_file.write_text(gate.to_json())
    for form, cal in (("multiple-choice", gate.options), ("free-text", gate.free_text)):
        print(
            f"{form}: answer when confidence > {cal.threshold:.3f} ({cal.answered}/{cal.n} calibration "
            f"answers answered, {cal.wrong} of them wrong); {cal.guarantee}"
        )
    print(f"saved: {gate_file}")

    # 4. Load it back (as you would in another process) and answer new questions through the gate.
    loaded = load_calibration_file(gate_file)
    answered = right = 0
    with Agent(vlm, workflow="direct", memory=None, calibration=loaded) as agent:
        for q in new:
            for options in (q.options, None):
                answer = agent.ask(q.question, image=q.image, options=options)
                ok = answer.text is not None and matches(answer.text, q.answer)
                if answer.abstained:
                    said = f"abstained ({answer.reason})"
                else:
                    answered += 1
                    right += ok
                    said = f"answered {answer.text!r} ({'right' if ok else 'wrong'})"
                kind = "options" if options else "free text"
                print(f"  {q.question} [{kind}] -> {said}; truth {q.answer!r}")
    total = 2 * len(new)
    print(f"new answers: answered {answered}/{total}, {right} of them right; abstained {total - answered}")
    scratch.cleanup()


if __name__ == "__main__":
    main()
