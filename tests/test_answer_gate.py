"""The gate on every answer: keyed to what it was calibrated for, on free text too, per category."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from foveate.agent import Agent
from foveate.conformal import crc_threshold
from foveate.conformal.answer_gate import AnswerGate, GateKey
from foveate.conformal.matching import matches, normalise_answer
from foveate.conformal.procedure import LabelledScore, calibrate_gate, check_gate, find_gate, save_gate
from foveate.conformal.records import CalibrationStore
from foveate.conformal.shipped import GATES_FILE, pick_gate, read_gates, write_gates
from foveate.errors import CalibrationMismatchError, CalibrationStoreError, ManifestError
from foveate.evaluation.labelled import load_labelled
from foveate.testing import ScriptedVLM
from foveate.vlm.budget import TokenBudget
from foveate.vlm.fingerprint import folder_fingerprint

OPTIONS = ["red", "green", "blue", "yellow"]


def _scores(n: int, seed: int) -> list[LabelledScore]:
    """Multiple-choice and free-text outcomes in two categories; relation answers are worse."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        category = "relation" if i % 2 else "attribute"
        label = int(rng.integers(0, 4))
        logits = rng.normal(0, 1, 4)
        logits[label] += 2.5 if category == "attribute" else 0.8
        probs = np.exp(logits) / np.exp(logits).sum()
        out.append(LabelledScore(category, tuple(probs.tolist()), label=label))
        confidence = float(rng.uniform(0, 1))
        right = rng.uniform() < (
            0.3 + 0.6 * confidence if category == "attribute" else 0.2 + 0.4 * confidence
        )
        out.append(LabelledScore(category, confidence=confidence, correct=bool(right)))
    return out


def _key(**changes: str) -> GateKey:
    fields = dict(
        model_id="m",
        model_fingerprint="sha256:aa",
        workflow="zoom",
        workflow_sha256="0" * 64,
        strategy="fast",
        budget="{}",
    )
    return GateKey(**(fields | changes))


def test_each_answer_form_and_category_gets_its_own_crc_threshold() -> None:
    scores = _scores(400, seed=0)
    gate = calibrate_gate(scores, 0.1, "crc", key=_key(), by_category=True)
    mc = [s for s in scores if s.is_options]
    top = np.array([max(s.probabilities) for s in mc])
    right = np.array([int(np.argmax(s.probabilities)) == s.label for s in mc])
    assert gate.options is not None and gate.options.threshold == crc_threshold(top, right, 0.1).threshold
    free = [s for s in scores if not s.is_options]
    conf = np.array([s.confidence for s in free])
    ok = np.array([bool(s.correct) for s in free])
    assert gate.free_text is not None and gate.free_text.threshold == crc_threshold(conf, ok, 0.1).threshold
    for name in ("attribute", "relation"):
        mine = np.array([s.category == name for s in free])
        expected = crc_threshold(conf[mine], ok[mine], 0.1).threshold
        assert gate.free_text_by_category[name].threshold == expected
    # relation answers are worse at every confidence: their threshold is stricter than attribute's
    assert (
        gate.free_text_by_category["relation"].threshold > gate.free_text_by_category["attribute"].threshold
    )
    assert gate.calibrated_on == {
        "options": 400,
        "free_text": 400,
        "options:attribute": 200,
        "free_text:attribute": 200,
        "options:relation": 200,
        "free_text:relation": 200,
    }


def test_free_text_decisions_follow_the_threshold_and_say_why() -> None:
    gate = calibrate_gate(_scores(400, seed=1), 0.1, "crc", by_category=True)
    cut = gate.free_text_by_category["relation"].threshold
    above = gate.decide_free_text("left", min(1.0, cut + 1e-6), category="relation")
    below = gate.decide_free_text("left", cut, category="relation")
    assert above.action == "answer" and above.answer == "left" and "category 'relation'" in above.reason
    assert below.action == "abstain" and below.answer is None and "<=" in below.reason
    marginal = gate.decide_free_text("left", 0.5)
    assert "marginal calibration (no category given)" in marginal.reason
    assert "was not calibrated" in gate.decide_free_text("left", 0.5, category="count").reason
    none = gate.decide_free_text("left", None)
    assert none.action == "abstain" and "no confidence" in none.reason
    only_options = calibrate_gate([s for s in _scores(50, seed=2) if s.is_options], 0.2, "lac")
    assert only_options.decide_free_text("x", 0.99).action == "abstain"


def test_mondrian_coverage_holds_per_category_where_marginal_does_not() -> None:
    """Marginal CRC answers the weaker category too often; the per-category gate bounds each one."""
    cal, test = _scores(2000, seed=3), _scores(4000, seed=4)
    marginal = calibrate_gate(cal, 0.1, "crc")
    mondrian = calibrate_gate(cal, 0.1, "crc", by_category=True)
    for name in ("attribute", "relation"):
        mine = [s for s in test if not s.is_options and s.category == name]

        def risk(gate: AnswerGate, rows: list[LabelledScore] = mine, c: str = name) -> float:
            decided = [gate.decide_free_text("x", s.confidence, category=c).action for s in rows]
            return float(
                np.mean([d == "answer" and not s.correct for d, s in zip(decided, rows, strict=True)])
            )

        assert risk(mondrian) <= 0.1 + 0.02
        if name == "relation":
            assert risk(marginal) > 0.1 + 0.02


def test_the_same_weights_in_another_folder_are_the_same_model() -> None:
    here, there = _key(model_id="/a/weights"), _key(model_id="/b/copy")
    assert here.matches(there) and here.sha256() == there.sha256() and here.differences(there) == []
    served = _key(model_fingerprint="served:http://h/v1#m", model_id="m")
    other = served.model_copy(update={"model_id": "n"})
    assert not served.matches(other) and served.differences(other) == [
        "model_id: calibrated for 'n', asked with 'm'"
    ]
    assert not here.matches(_key(model_fingerprint="sha256:bb"))


def test_a_gate_round_trips_through_json_and_the_store(tmp_path: Path) -> None:
    gate = calibrate_gate(_scores(10, seed=5), 0.05, "crc", key=_key(), by_category=True)
    assert gate.free_text is not None and math.isinf(gate.free_text.threshold)  # 10 are too few at 0.05
    assert AnswerGate.from_json(gate.to_json()) == gate
    db = str(tmp_path / "cal.db")
    with CalibrationStore(db) as store:
        save_gate(store, gate)
    assert find_gate(db, _key(), 0.05, "crc") == gate
    with pytest.raises(CalibrationStoreError, match="no lac calibration at alpha 0.05"):
        find_gate(db, _key(), 0.05, "lac")


def test_a_gate_made_for_something_else_is_refused_naming_each_difference(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = str(tmp_path / "cal.db")
    gate = calibrate_gate(_scores(100, seed=6), 0.1, "crc", key=_key())
    with CalibrationStore(db) as store:
        record = save_gate(store, gate)
    asked = _key(workflow="full", budget='{"max_total_tokens":900}')
    with pytest.raises(CalibrationMismatchError) as err:
        find_gate(db, asked, 0.1, "crc")
    text = str(err.value)
    assert "workflow: calibrated for 'zoom', asked with 'full'" in text
    assert "budget: max_total_tokens calibrated for (absent), asked with 900" in text
    assert "model_id" not in text
    assert f"record {record.id}" in text and db in text and "--allow-calibration-mismatch" in text
    with caplog.at_level(logging.WARNING):
        assert find_gate(db, asked, 0.1, "crc", allow_mismatch=True) == gate
    assert "made for something else" in caplog.text
    assert check_gate(gate, _key(), origin="x") is gate


def _image(tmp_path: Path) -> Path:
    path = tmp_path / "scene.png"
    Image.new("RGB", (64, 48), "white").save(path)
    return path


def test_the_agent_refuses_a_gate_for_another_workflow_and_gates_free_text(tmp_path: Path) -> None:
    picture = _image(tmp_path)
    vlm = ScriptedVLM(generate=lambda images, prompt: "blue", generate_confidence=0.9)
    with Agent(vlm, workflow="direct") as plain:
        key = plain.gate_key
    free = calibrate_gate(
        [LabelledScore(confidence=c / 100, correct=c > 50) for c in range(100)], 0.2, "crc", key=key
    )
    assert free.free_text is not None and 0.3 < free.free_text.threshold < 0.9
    with pytest.raises(
        CalibrationMismatchError, match="workflow: calibrated for 'direct', asked with 'zoom'"
    ):
        Agent(vlm, workflow="zoom", calibration=free)
    with pytest.raises(CalibrationMismatchError, match="budget"):
        Agent(vlm, workflow="direct", budget=TokenBudget(max_total_tokens=5000), calibration=free)
    with Agent(vlm, workflow="zoom", calibration=free, allow_calibration_mismatch=True) as anyway:
        assert anyway.calibration is free
    with Agent(vlm, workflow="direct", calibration=free) as agent:
        sure = agent.ask("What colour is it?", image=picture)
        assert sure.text == "blue" and not sure.abstained and sure.confidence == pytest.approx(0.9)
    unsure_vlm = ScriptedVLM(generate=lambda images, prompt: "blue", generate_confidence=0.2)
    unsure_key = Agent(unsure_vlm, workflow="direct").gate_key
    with Agent(
        unsure_vlm, workflow="direct", calibration=free.model_copy(update={"key": unsure_key})
    ) as agent:
        unsure = agent.ask("What colour is it?", image=picture)
    assert unsure.abstained and unsure.text is None and "free-text confidence 0.200 <=" in unsure.reason
    silent = ScriptedVLM(generate=lambda images, prompt: "blue")  # no token log-probabilities
    with Agent(silent, workflow="direct", calibration=free.model_copy(update={"key": None})) as agent:
        mute = agent.ask("What colour is it?", image=picture)
    assert mute.abstained and "no confidence" in mute.reason


def test_the_model_fingerprint_hashes_the_weights_but_not_the_gates_beside_them(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\x00" * 1000)
    first = folder_fingerprint(folder)
    (folder / GATES_FILE).write_text("[]")
    (folder / "README.md").write_text("notes")
    assert folder_fingerprint(folder) == first
    (folder / "model.safetensors").write_bytes(b"\x00" * 999 + b"\x01")
    assert folder_fingerprint(folder) != first


def test_shipped_gates_are_written_replaced_and_picked_by_key(tmp_path: Path) -> None:
    a = calibrate_gate(_scores(50, seed=7), 0.1, "crc", key=_key())
    b = calibrate_gate(_scores(60, seed=8), 0.1, "crc", key=_key(workflow="full"))
    write_gates(tmp_path, [a, b])
    newer = calibrate_gate(_scores(70, seed=9), 0.1, "crc", key=_key())
    write_gates(tmp_path, [newer])
    assert read_gates(tmp_path) == [b, newer]
    assert pick_gate(read_gates(tmp_path), _key(), "crc") == (newer, [])
    retrained = calibrate_gate(_scores(70, seed=9), 0.1, "crc", key=_key(model_fingerprint="sha256:bb"))
    write_gates(tmp_path, [retrained])  # new weights: the old weights' gates can never be picked again
    assert read_gates(tmp_path) == [retrained]
    write_gates(tmp_path, [a, b])
    none, why = pick_gate(read_gates(tmp_path), _key(workflow="full", strategy="zoomeye"), "crc")
    assert none is None and why == ["strategy: calibrated for 'fast', asked with 'zoomeye'"]
    (tmp_path / GATES_FILE).write_text("[{]")
    with pytest.raises(CalibrationStoreError, match=GATES_FILE):
        read_gates(tmp_path)


def test_labelled_questions_load_with_paths_relative_to_their_file(tmp_path: Path) -> None:
    _image(tmp_path)
    good = tmp_path / "q.jsonl"
    lines = [
        {"image": "scene.png", "question": "Colour?", "options": OPTIONS, "answer": "red", "category": "a"},
        {"image": str(tmp_path / "scene.png"), "question": "What is it?", "answer": "a square"},
    ]
    good.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    first, second = load_labelled(good)
    assert first.image == tmp_path / "scene.png" and first.answer_index == 0 and first.category == "a"
    assert second.options == [] and second.answer_index is None
    cases = {
        '{"image": "scene.png", "question": "q", "options": ["a", "b"], "answer": "c"}': "not one of the",
        '{"image": "nope.png", "question": "q", "answer": "c"}': "no image file",
        '{"image": "scene.png", "answer": "c"}': "question",
        "[1, 2]": "JSON object",
        "{oops": "not JSON",
    }
    for line, problem in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(lines[0]) + "\n" + line + "\n")
        with pytest.raises(ManifestError, match=problem) as err:
            load_labelled(bad)
        assert f"{bad}:2:" in str(err.value)


def test_free_text_matching_is_a_normalised_exact_match() -> None:
    assert normalise_answer("  The Left!  ") == "left"
    assert matches("It is blue.", "blue") and matches("Two", "2") and matches("an apple", ["pear", "apple"])
    assert not matches("navy", "blue") and not matches("", "blue") and not matches("blue green", "blue")


def test_an_adaptive_agent_switches_on_aci_when_feedback_shows_drift(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Calibrated where a confident answer is right, then the world changes: every confident answer is
    wrong. The monitor detects it from feedback, switches the adaptive threshold on (and says so), and the
    agent stops answering what it answered before."""
    picture = _image(tmp_path)
    vlm = ScriptedVLM(score=lambda images, prompt, options: [0.9, 0.05, 0.03, 0.02])
    rng = np.random.default_rng(11)
    calm = []
    for _ in range(300):  # before: a top probability above 0.85 is right 97% of the time
        top = float(rng.uniform(0.3, 1.0))
        right = rng.uniform() < (0.97 if top > 0.85 else 0.4)
        probs = (top, (1 - top) / 3, (1 - top) / 3, (1 - top) / 3)
        calm.append(LabelledScore(probabilities=probs, label=0 if right else 1))
    with Agent(vlm, workflow="direct") as plain:
        key = plain.gate_key
    gate = calibrate_gate(calm, 0.1, "crc", key=key)
    assert gate.options is not None and gate.options.threshold < 0.9 and len(gate.options_scores) == 300
    with pytest.raises(Exception, match="CRC gate"):
        calibrate_gate(calm, 0.1, "lac", key=key).adaptive_monitor()
    answers = []
    with (
        caplog.at_level(logging.WARNING),
        Agent(vlm, workflow="direct", calibration=gate, adaptive=True) as agent,
    ):
        for _ in range(80):
            answer = agent.ask("What colour is it?", image=picture, options=OPTIONS)
            answers.append(answer.abstained)
            if not answer.abstained:
                agent.feedback(answer.run_id, answer="green")  # the world changed: it is wrong now
        assert agent.monitor is not None and agent.monitor.adapting
    assert "adaptive threshold switched on" in caplog.text
    assert not answers[0] and answers[-1]  # answered at first, abstains once the threshold has moved
