"""Every command checks what it can before the model loads (6-11 s for a local model): a wrong image,
workflow, database path or calibration is named at once (issue 26, item 5).

The model named here is a trap: a folder that cannot be loaded. A command that loaded its model before
checking its other inputs reports the model, not the input that is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from foveate.cli.main import app

TRAP = "cannot load model folder"

CASES = [
    (["run", "missing.png", "q?"], "image file not found: missing.png"),
    (["run", "http://example.com/a.png", "q?"], "foveate does not download images"),
    (["run", "ok.png", "q?", "--workflow", "nope.yaml"], "no workflow 'nope.yaml'"),
    (["run", "ok.png", "q?", "--memory", "."], "is a directory, not a SQLite file"),
    (["run", "ok.png", "q?", "--checkpoints", "."], "checkpoint database . is a directory"),
    (["run", "ok.png", "q?", "--calibration", "missing.json"], "calibration file not found"),
    (["run", "ok.png", "q?", "--alpha", "0.1"], "no calibration database at"),
    (["run", "--resume", "abc"], "no run 'abc'"),
    (["run", "ok.png", "q?", "--options", "a,a"], "given twice"),
    (["call", "missing.png", "q?"], "image file not found"),
    (["chat", "--workflow", "nope.yaml"], "no workflow 'nope.yaml'"),
    (["chat", "--memory", "."], "is a directory, not a SQLite file"),
    (["chat", "--calibration", "missing.json"], "calibration file not found"),
    (["chat", "--image", "missing.png"], "image file not found"),
    (["calibrate", "--synthetic", "2", "--workflow", "nope.yaml"], "no workflow 'nope.yaml'"),
    (["batch", "questions.jsonl", "--out", "o.jsonl", "--workflow", "nope.yaml"], "no workflow 'nope.yaml'"),
    (["batch", "questions.jsonl", "--out", "o.jsonl", "--memory", "."], "is a directory, not a SQLite file"),
    (["batch", "missing.jsonl", "--out", "o.jsonl"], "not found"),
    (
        ["eval", "jsonl", "questions.jsonl", "--out", "o", "--workflow", "nope.yaml"],
        "no workflow 'nope.yaml'",
    ),
    (["feedback", "abc", "--right"], "no run 'abc'"),
    (["serve", "--workflow", "nope.yaml"], "no workflow 'nope.yaml'"),
    (["serve", "--memory", "."], "is a directory, not a SQLite file"),
]


@pytest.mark.parametrize(("args", "says"), CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_a_wrong_input_is_named_before_the_model_loads(
    args: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "trap").mkdir()
    (tmp_path / "trap" / "config.json").write_text("{}")  # a folder no backend can load
    Image.new("RGB", (64, 64)).save(tmp_path / "ok.png")
    (tmp_path / "questions.jsonl").write_text(
        '{"image": "ok.png", "question": "q?", "options": ["a", "b"]}\n'
    )
    result = CliRunner().invoke(app, [*args, "--model", str(tmp_path / "trap")], input="")
    assert result.exit_code == 2, result.output
    assert TRAP not in result.stderr and says in result.stderr, result.stderr
    # looking created no database
    assert not (tmp_path / ".foveate").exists() or not any((tmp_path / ".foveate").iterdir())


def test_the_trap_is_a_trap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every input right, the same commands do reach the model, and fail on it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    (tmp_path / "trap").mkdir()
    (tmp_path / "trap" / "config.json").write_text("{}")
    Image.new("RGB", (64, 64)).save(tmp_path / "ok.png")
    result = CliRunner().invoke(app, ["run", "ok.png", "q?", "--model", str(tmp_path / "trap")])
    assert result.exit_code == 2 and TRAP in result.stderr, result.stderr
