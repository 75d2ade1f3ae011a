"""The embedded tiny VLM gates out of the box: the gates it ships fit its weights and built-in workflows."""

from __future__ import annotations

from pathlib import Path

import pytest

from foveate.agent import Agent
from foveate.conformal.answer_gate import AnswerGate
from foveate.conformal.shipped import GATES_FILE, read_gates
from foveate.errors import CalibrationMismatchError
from foveate.synthetic import HARD, PLAIN, generate_scene
from foveate.tiny_vlm import TINY_VLM_PATH
from foveate.vlm.transformers_vlm import TransformersVLM


@pytest.fixture(scope="module")
def tiny() -> TransformersVLM:
    return TransformersVLM(TINY_VLM_PATH, device="cpu")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No user config, no FOVEATE_* settings: the defaults a fresh machine has."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    for name in ("FOVEATE_ALPHA", "FOVEATE_METHOD", "FOVEATE_DEFAULT_GATE", "FOVEATE_WORKFLOW"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.mark.parametrize("workflow", ["direct", "zoom", "full"])
def test_a_shipped_gate_fits_each_built_in_workflow(tiny: TransformersVLM, home: Path, workflow: str) -> None:
    """Re-training the weights or editing a built-in workflow makes the shipped gate a gate for something
    else; this fails until `make calibrate-fixture` has been run again."""
    with Agent.from_defaults(vlm=tiny, workflow=workflow, memory=None, checkpoints=None) as agent:
        gate = agent.calibration
        assert isinstance(gate, AnswerGate), (
            f"no shipped gate fits workflow {workflow}: make calibrate-fixture"
        )
        assert (
            gate.key is not None
            and gate.key.matches(agent.gate_key)
            and gate.method == "lac"
            and gate.alpha == 0.1
        )
        assert gate.options is not None and gate.free_text is not None
        assert gate.calibrated_on["options"] >= 150 and "seed 5" in gate.source
    shipped = read_gates(TINY_VLM_PATH)
    assert {(g.key.workflow if g.key else "", g.method) for g in shipped} >= {
        (workflow, "lac"),
        (workflow, "crc"),
    }


def test_the_default_agent_abstains_on_a_wrong_answer_and_answers_a_right_one_with_its_set(
    tiny: TransformersVLM, home: Path
) -> None:
    withheld_wrong = answered_right = None
    outcomes = []
    with Agent.from_defaults(vlm=tiny, memory=None, checkpoints=None) as agent:  # the full workflow
        # seed 31: not the gates' calibration seed (5); the harder world, where the model errs more often
        for i, world in [(i, w) for i in range(20) for w in (PLAIN, HARD)]:
            image, item = generate_scene(31, i, world=world)
            answer = agent.ask(item.question, image=image, options=item.options)
            right = answer.option == item.answer
            outcomes.append((answer.abstained, right))
            if answer.abstained and not right and withheld_wrong is None:
                withheld_wrong = answer
            if not answer.abstained and right and answered_right is None:
                answered_right = answer
            if withheld_wrong is not None and answered_right is not None:
                break
    assert withheld_wrong is not None, f"no wrong answer was withheld in {len(outcomes)} scenes: {outcomes}"
    assert withheld_wrong.text is None and "prediction set" in withheld_wrong.reason
    assert answered_right is not None, f"no right answer was given in {len(outcomes)} scenes: {outcomes}"
    assert answered_right.prediction_set == [answered_right.text]


def test_a_gate_file_beside_other_weights_is_not_used(tiny: TransformersVLM, home: Path) -> None:
    """The shipped gates are keyed by the weights' hash: copied beside other weights they fit nothing."""
    assert (Path(TINY_VLM_PATH) / GATES_FILE).is_file()
    with Agent.from_defaults(vlm=tiny, memory=None, checkpoints=None, calibration=None) as agent:
        assert agent.calibration is None  # an explicit None turns the gate off
    shipped = read_gates(TINY_VLM_PATH)[0]
    assert shipped.key is not None
    changed = shipped.model_copy(
        update={"key": shipped.key.model_copy(update={"model_fingerprint": "sha256:00"})}
    )
    with (
        Agent(tiny, workflow=shipped.key.workflow) as agent,
        pytest.raises(CalibrationMismatchError, match="model_fingerprint: calibrated for 'sha256:00'"),
    ):
        agent.set_calibration(changed)


def test_the_shipped_crc_gate_can_adapt_under_drift(
    tiny: TransformersVLM, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FOVEATE_METHOD", "crc")
    with Agent.from_defaults(
        vlm=tiny, workflow="zoom", memory=None, checkpoints=None, adaptive=True
    ) as agent:
        gate = agent.calibration
        assert isinstance(gate, AnswerGate) and gate.method == "crc" and len(gate.options_scores) >= 150
        assert agent.monitor is not None and agent.monitor.adapt is not None and not agent.monitor.adapting
