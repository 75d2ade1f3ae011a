"""The command line: real subcommands, clear one-line errors, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from foveate.cli.main import app
from foveate.synthetic import load_manifest

runner = CliRunner()


def test_bench_make_writes_a_valid_benchmark(tmp_path: Path) -> None:
    result = runner.invoke(app, ["bench", "make", "--n", "2", "--seed", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    items = load_manifest(tmp_path)
    assert len(items) == 2 and all((tmp_path / it.image).is_file() for it in items)


def test_bench_fixture_measures_the_fixture_seeds_by_default() -> None:
    from foveate.cli.bench_cmd import FIXTURE_SEEDS
    from foveate.evaluation.fixture import EVAL_SEEDS

    assert ",".join(map(str, EVAL_SEEDS)) == FIXTURE_SEEDS


def test_call_with_a_missing_image_is_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["call", str(tmp_path / "nope.png"), "What is it?"])
    assert result.exit_code == 2
    assert "image file not found" in result.output and "Traceback" not in result.output


def test_call_with_an_unknown_model_folder(tmp_path: Path) -> None:
    picture = tmp_path / "p.png"
    Image.fromarray(np.zeros((20, 20, 3), dtype=np.uint8)).save(picture)
    result = runner.invoke(app, ["call", str(picture), "What?", "--model", str(tmp_path / "no-model")])
    assert result.exit_code == 2 and "no model folder at" in result.output


def test_call_scores_options(tmp_path: Path, tiny_model_dirs: dict[str, Path]) -> None:
    picture = tmp_path / "p.png"
    Image.fromarray(np.zeros((64, 80, 3), dtype=np.uint8)).save(picture)
    args = [
        "call",
        str(picture),
        "Is it dark?",
        "--options",
        "Yes,No",
        "--model",
        str(tiny_model_dirs["llava"]),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "answer:" in result.output and "visual" in result.output


def test_demo_answers_end_to_end_with_the_full_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "the embedded tiny VLM" in out and "generated answer on the crop" in out
    for node in ("perceive", "recall", "zoom", "reason", "judge", "abstain", "remember"):
        assert f" {node} " in out
    assert ("workflow answer:" in out) != ("workflow abstained:" in out)
    assert "lesson stored after feedback" in out
    # the shipped gate: more scenes until it withholds one answer, saying why
    assert "The abstention gate (AnswerGate, alpha 0.1" in out
    assert "abstained: the LAC prediction set at alpha 0.1 holds" in out and "answered" in out


def test_run_takes_a_workflow_file_first_and_refuses_half_an_invocation(tmp_path: Path) -> None:
    from foveate.synthetic import generate_scene

    image, item = generate_scene(7, 0)
    picture = tmp_path / "scene.png"
    image.save(picture)
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "name: mine\nstart: zoom\nnodes:\n  zoom: {uses: zoom, params: {max_probes: 20}}\n"
        "  reason: {uses: reason}\nedges:\n  - {from: zoom, to: reason}\n  - {from: reason, to: END}\n"
    )
    common = ["--options", ",".join(item.options), "--no-memory", "--checkpoints", str(tmp_path / "runs.db")]
    result = runner.invoke(app, ["run", str(flow), str(picture), item.question, *common, "--budget", "5000"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "zoom" in out and "answer:" in out and "abstain" not in out  # our two-node workflow ran
    half = runner.invoke(app, ["run", str(picture)])
    assert half.exit_code == 2 and "IMAGE QUESTION" in half.output


def test_one_config_file_serves_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``calibration_db`` in config.toml is the database ``foveate calibrate`` writes and ``foveate run
    --alpha`` reads (and ``memory_db`` / ``checkpoints`` likewise): defaults resolve in one place."""
    from foveate.conformal.records import CalibrationStore

    home, chosen = tmp_path / "home", tmp_path / "chosen"
    config = tmp_path / "config.toml"
    config.write_text(
        f'calibration_db = "{chosen / "calibrations.db"}"\n'
        f'memory_db = "{chosen / "memory.db"}"\n'
        f'checkpoints = "{chosen / "runs.db"}"\n'
        'workflow = "direct"\n'
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FOVEATE_CONFIG", str(config))
    for name in ("FOVEATE_CALIBRATION_DB", "FOVEATE_MEMORY_DB", "FOVEATE_CHECKPOINTS", "FOVEATE_WORKFLOW"):
        monkeypatch.delenv(name, raising=False)
    bench = tmp_path / "bench"
    assert (
        runner.invoke(app, ["bench", "make", "--n", "12", "--seed", "3", "--out", str(bench)]).exit_code == 0
    )
    calibrated = runner.invoke(app, ["calibrate", "--bench", str(bench), "--alpha", "0.3", "--method", "crc"])
    assert calibrated.exit_code == 0, calibrated.output
    with CalibrationStore(chosen / "calibrations.db", create=False) as store:
        (record,) = store.list()
    assert record.method == "crc" and record.alpha == 0.3
    assert not (home / ".foveate" / "calibrations.db").exists()  # the built-in default was not used

    image = load_manifest(bench)[0]
    picture = bench / image.image
    args = ["run", str(picture), image.question, "--options", ",".join(image.options), "--alpha", "0.3"]
    args += ["--method", "crc"]
    gated = runner.invoke(app, args)
    assert gated.exit_code == 0, gated.output
    out = " ".join(gated.output.split())
    assert "reason" in out and "abstain" in out and "without a guarantee" not in out  # the record gated it
    assert (chosen / "runs.db").is_file() and (chosen / "memory.db").is_file()
    assert not (home / ".foveate").exists()

    # another config's calibration database: the same command names it, absent (before the model loads)
    # and empty (no record)
    other = tmp_path / "other.toml"
    other.write_text(config.read_text().replace(str(chosen / "calibrations.db"), str(tmp_path / "none.db")))
    monkeypatch.setenv("FOVEATE_CONFIG", str(other))
    missing = runner.invoke(app, args)
    assert missing.exit_code == 2 and "there is no calibration database at" in missing.output
    assert str(tmp_path / "none.db") in " ".join(missing.output.split())
    CalibrationStore(tmp_path / "none.db").close()
    empty = runner.invoke(app, args)
    assert empty.exit_code == 2 and "no crc calibration at alpha 0.3" in empty.output
    assert str(tmp_path / "none.db") in " ".join(empty.output.split())
