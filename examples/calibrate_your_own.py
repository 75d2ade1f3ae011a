"""Calibrate the abstention gate on your own labelled images, save it, and answer new questions with it.

    .venv/bin/python examples/calibrate_your_own.py [--out DIR] [--alpha 0.1]

1. Labelled data: a folder of images and a ``labels.jsonl``, one question per line::

       {"image": "images/q000.png", "question": "...", "options": ["...", "..."], "answer": "..."}

   Here 52 generated scenes stand in for yours (the first 40 calibrate, the last 12 are "new").
2. Answer the calibration questions with the workflow you will use later (calibration holds for one
   model, one workflow and one prompt: change any of them and calibrate again).
3. Calibrate with ``foveate.conformal``: conformal risk control (CRC) gives a confidence threshold with
   ``P(answered and wrong) <= alpha``; split-conformal LAC gives prediction sets holding the right option
   for ``1 - alpha`` of the questions. Save both as JSON.
4. Load the CRC calibration into ``Agent(calibration=...)``: it answers only above the threshold and
   says why when it abstains. (``foveate run ... --calibration FILE`` loads the same file.)

Runs offline on the embedded tiny VLM, with the one-call ``direct`` workflow to keep it fast.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import TypedDict

import numpy as np

from foveate import Agent
from foveate.conformal import ConformalCalibration, SelectiveCalibration, calibrate, crc_threshold
from foveate.conformal.gate import abstain_or_answer
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
        row = {"image": name, "question": item.question, "options": item.options, "answer": item.answer}
        lines.append(json.dumps(row))
    labels = folder / "labels.jsonl"
    labels.write_text("\n".join(lines) + "\n")
    return labels


class Labelled(TypedDict):
    image: str  # relative to the labels file's folder
    question: str
    options: list[str]
    answer: str


def read_labels(labels: Path) -> list[Labelled]:
    rows: list[Labelled] = [json.loads(line) for line in labels.read_text().splitlines() if line.strip()]
    return [{**row, "image": str(labels.parent / row["image"])} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="Folder for the data and calibration files [temporary].")
    parser.add_argument("--alpha", type=float, default=0.1, help="Risk level for CRC (LAC uses 2 x alpha).")
    args = parser.parse_args()
    scratch = tempfile.TemporaryDirectory(prefix="foveate-calibrate-")  # used when no --out
    out: Path = args.out or Path(scratch.name)
    out.mkdir(parents=True, exist_ok=True)

    rows = read_labels(make_labelled_data(out))
    calibration_rows, new_rows = rows[:N_CALIBRATION], rows[N_CALIBRATION:]
    print(f"labelled data: {len(rows)} questions in {out / 'labels.jsonl'}")

    vlm = load_vlm()  # the embedded tiny VLM, on the CPU

    # 2. Answer the calibration questions: option probabilities and whether the top option was right.
    with Agent(vlm, workflow="direct", memory=None) as agent:
        answers = [agent.ask(r["question"], image=r["image"], options=r["options"]) for r in calibration_rows]
    width = max(len(a.options) for a in answers)  # fewer options on some questions: pad with p = 0
    probs = np.array([a.option_scores + [0.0] * (width - len(a.options)) for a in answers])
    labels = np.array([a.options.index(r["answer"]) for a, r in zip(answers, calibration_rows, strict=True)])
    top, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    print(f"calibration: {len(answers)} questions answered, top-option accuracy {correct.mean():.2f}")

    # 3. Calibrate and save.
    crc = crc_threshold(top, correct, args.alpha)
    lac = calibrate(probs, labels, min(2 * args.alpha, 0.5), "lac")
    crc_file, lac_file = out / "calibration-crc.json", out / "calibration-lac.json"
    crc_file.write_text(crc.model_dump_json(indent=2))
    lac_file.write_text(lac.model_dump_json(indent=2))
    print(
        f"CRC alpha={crc.alpha}: answer when confidence > {crc.threshold:.3f} "
        f"({crc.answered}/{crc.n} calibration questions answered, {crc.wrong} of them wrong); {crc.guarantee}"
    )
    print(f"LAC alpha={lac.alpha}: an option is in the set when 1 - p <= {lac.threshold:.3f}")
    print(f"saved: {crc_file} {lac_file}")

    # 4. Load it back (as you would in another process) and answer new questions through the gate.
    gate = SelectiveCalibration.model_validate_json(crc_file.read_text())
    sets = ConformalCalibration.model_validate_json(lac_file.read_text())
    answered = right = 0
    with Agent(vlm, workflow="direct", memory=None, calibration=gate) as agent:
        for r in new_rows:
            answer = agent.ask(r["question"], image=r["image"], options=r["options"])
            lac_set = abstain_or_answer(answer.options, answer.option_scores, sets).kept
            if answer.abstained:
                said = f"abstained ({answer.reason})"
            else:
                answered += 1
                right += answer.text == r["answer"]
                said = f"answered {answer.text!r} ({'right' if answer.text == r['answer'] else 'wrong'})"
            print(f"  {r['question']}  -> {said}; LAC set {lac_set}; truth {r['answer']!r}")
    abstained = len(new_rows) - answered
    print(f"new questions: answered {answered}/{len(new_rows)}, {right} of them right; abstained {abstained}")
    scratch.cleanup()


if __name__ == "__main__":
    main()
