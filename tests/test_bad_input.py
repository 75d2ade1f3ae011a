"""Bad input a new user gives: one clear error naming the problem (exit 2 and one line on the command line),
never a traceback, never a silently wrong answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from foveate import Agent
from foveate.cli.main import app
from foveate.errors import FoveateError, GraphSpecError, RunError
from foveate.graphs.nodes import builtin_registry
from foveate.graphs.spec import MAX_EXPANDED_NODES, load_workflow
from foveate.graphs.workflow import builtin_workflow_path
from foveate.testing import ScriptedVLM

runner = CliRunner()
PICTURE = np.full((64, 64, 3), 128, dtype=np.uint8)


@pytest.fixture
def agent() -> Agent:
    return Agent(ScriptedVLM(), workflow="direct", memory=None, checkpoints=None)


@pytest.mark.parametrize(
    ("question", "options", "said"),
    [
        ("", None, "the question is empty"),
        ("   \n", None, "the question is empty"),
        ("What is \udcff?", None, "not valid UTF-8"),
        ("Which?", ["red", "red "], "given twice"),
        ("Which?", ["red"], r"one option \('red'\) is not a choice"),
        ("Which?", ["red", ""], "an option is empty"),
        ("Which?", [f"o{i}" for i in range(27)], "at most 26"),
    ],
)
def test_questions_that_cannot_be_asked_are_refused_before_any_call(
    agent: Agent, question: str, options: list[str] | None, said: str
) -> None:
    with pytest.raises(FoveateError, match=said):
        agent.ask(question, image=PICTURE, options=options)


def test_the_cap_on_options_is_a_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from foveate.settings import load_settings

    few = Agent(ScriptedVLM(), workflow="direct", memory=None, checkpoints=None, max_options=3)
    with pytest.raises(FoveateError, match="4 options: at most 3"):
        few.ask("Which?", image=PICTURE, options=["a", "b", "c", "d"])
    assert few.ask("Which?", image=PICTURE, options=["a", "b", "c"]).text in {"a", "b", "c"}
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("FOVEATE_MAX_OPTIONS", "40")
    settings = load_settings()
    assert settings.max_options == 40
    many = Agent.from_defaults(
        settings=settings, vlm=ScriptedVLM(), workflow="direct", memory=None, checkpoints=None
    )
    options = [f"o{i}" for i in range(30)]
    assert many.ask("Which?", image=PICTURE, options=options).text in options


def test_a_question_in_bytes_is_refused(agent: Agent) -> None:
    with pytest.raises(FoveateError, match="text"):
        agent.ask(b"\xff\xfe what?", image=PICTURE)  # type: ignore[arg-type]


def test_the_command_line_says_it_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    picture = tmp_path / "p.png"
    Image.fromarray(PICTURE).save(picture)
    for args, said in (
        (["run", str(picture), ""], "the question is empty"),
        (["run", str(picture), "What is \udcff?"], "not valid UTF-8"),
        (["run", str(picture), "Which?", "--options", "red"], "is not a choice"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert said in result.output and "Traceback" not in result.output
        assert result.output.strip().count("\n") == 0, result.output


def test_a_budget_past_what_checkpoints_store_is_a_usage_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-c", "from foveate.cli.main import main; main()", "run", "x.png", "What?"]
    result = subprocess.run([*command, "--budget", str(2**70)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "--budget" in result.stderr


def test_a_workflow_past_its_max_steps_names_max_steps(tmp_path: Path) -> None:
    text = builtin_workflow_path("direct").read_text() + "max_steps: 1\n"
    (tmp_path / "short.yaml").write_text(text)
    with (
        Agent(ScriptedVLM(), workflow=tmp_path / "short.yaml", memory=None, checkpoints=None) as agent,
        pytest.raises(RunError, match="ran 1 steps without reaching END.*max_steps"),
    ):
        agent.ask("What is it?", image=PICTURE, options=["a", "b"])


def test_an_alias_bomb_is_refused_without_being_expanded(tmp_path: Path) -> None:
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(
        "\n".join(levels) + "\nname: bomb\nstart: x\nnodes: {}\nedges: []\n"
    )  # ~400 bytes, 10^9 values
    with pytest.raises(GraphSpecError, match=f"more than {MAX_EXPANDED_NODES:,} values"):
        load_workflow(bomb, None)
    small = tmp_path / "anchors.yaml"  # anchors a workflow really uses still work
    small.write_text(
        "name: a\nstart: r\nnodes:\n  r: &n {uses: reason, params: {use_insights: false}}\n  s: *n\n"
        "edges:\n  - {from: r, to: s}\n  - {from: s, to: END}\n"
    )
    assert set(load_workflow(small, builtin_registry())[0].nodes) == {"r", "s"}


def test_a_huge_or_special_workflow_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * 4_100_000 + "\n")
    with pytest.raises(GraphSpecError, match="is not a workflow"):
        load_workflow(big, None)
    fifo = tmp_path / "pipe.yaml"
    import os

    os.mkfifo(fifo)
    with pytest.raises(GraphSpecError, match="not a regular file"):
        load_workflow(fifo, None)


def test_a_10000_node_workflow_validates(tmp_path: Path) -> None:
    n = 10_000
    lines = ["name: big", "start: n0", "nodes:"] + [f"  n{i}: {{uses: reason}}" for i in range(n)]
    lines += ["edges:"] + [f"  - {{from: n{i}, to: n{i + 1}}}" for i in range(n - 1)]
    lines.append(f"  - {{from: n{n - 1}, to: END}}")
    path = tmp_path / "big.yaml"
    path.write_text("\n".join(lines) + "\n")
    spec, _ = load_workflow(path, builtin_registry())
    assert len(spec.nodes) == n  # how long it takes is measured in benchmarks, not here


@pytest.mark.parametrize("retries", [0, 1])
def test_a_server_that_never_answers_fails_in_the_time_asked(tmp_path: Path, retries: int) -> None:
    """It accepts the connection and says nothing (before: 60 s x 3 tries, with no way to change either,
    and nothing said while waiting). Each retry is a line on stderr naming the server."""
    import socket
    import subprocess
    import sys

    picture = tmp_path / "p.png"
    Image.fromarray(PICTURE).save(picture)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel accepts; nobody ever reads or replies
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        command = [sys.executable, "-c", "from foveate.cli.main import main; main()", "run", str(picture)]
        command += ["What is it?", "--endpoint", url, "--model", "m", "--family", "llava", "--no-memory"]
        command += ["--no-gate", "--timeout", "1", "--retries", str(retries)]
        command += ["--checkpoints", str(tmp_path / "r.db")]
        env = {**__import__("os").environ, "HOME": str(tmp_path), "FOVEATE_CONFIG": str(tmp_path / "none")}
        # the default (60 s x 3 tries) would pass the subprocess timeout below; --timeout 1 --retries 0 not
        result = subprocess.run(command, capture_output=True, text=True, timeout=150, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert f"the model server at {url} timed out" in lines[-1] and "Traceback" not in result.stderr
    assert len(lines) == retries + 1, result.stderr
    for k, line in enumerate(lines[:-1], start=1):
        assert line.startswith(f"waiting: the model server at {url} has not answered; retry {k} of {retries}")


def _damaged_sqlite(path: Path) -> bytes:
    """A SQLite file with a valid header and a page of its table overwritten (a bad disk, a torn copy)."""
    import sqlite3

    with sqlite3.connect(path) as conn:
        conn.execute("create table t(id integer primary key, x text)")
        conn.executemany("insert into t(x) values (?)", [(f"row {i} " * 20,) for i in range(3000)])
    conn.close()
    with path.open("r+b") as handle:
        handle.seek(4096 * 5 + 100)
        handle.write(b"\xde\xad\xbe\xef" * 200)
    return path.read_bytes()


def test_foveate_writes_nothing_into_a_damaged_calibration_or_checkpoint_file(tmp_path: Path) -> None:
    from foveate.conformal.records import CalibrationStore
    from foveate.errors import CalibrationStoreError
    from foveate.graphs.workflow import open_checkpointer

    for name, opening, error in (
        ("calibrations.db", CalibrationStore, CalibrationStoreError),
        ("runs.db", open_checkpointer, RunError),
    ):
        path = tmp_path / name
        before = _damaged_sqlite(path)
        with pytest.raises(error, match="fails SQLite's integrity check") as info, opening(path):  # type: ignore[operator]
            pass
        assert "\n" not in str(info.value) and str(path) in str(info.value)
        assert path.read_bytes() == before  # untouched
