"""Every argument a new user can get wrong, on the command line and in ``Agent``: empty, huge, of the wrong
type or encoding, a FIFO or a folder where a file goes. Each case found by probing the CLI (issue 25, part
4) is one line on stderr with exit 2 (or one ``FoveateError``), never a traceback, a hang, or a silently
wrong result; and nothing the user had is overwritten."""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from foveate import Agent
from foveate.cli.main import app, main
from foveate.errors import FoveateError
from foveate.memory import HashingEmbedder, InsightMemory
from foveate.testing import ScriptedVLM
from foveate.vlm import TokenBudget

runner = CliRunner()
PICTURE = np.full((64, 64, 3), 128, dtype=np.uint8)


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with an image, a memory, a question file, a FIFO, a folder and a symlink loop; the CLI runs
    there with no config of its own."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.chdir(tmp_path)
    Image.fromarray(PICTURE).save(tmp_path / "p.png")
    with InsightMemory(tmp_path / "mem.db", embedder=HashingEmbedder()) as memory:
        memory.add("Look in the corners first.")
    (tmp_path / "q.jsonl").write_text('{"image": "p.png", "question": "What colour?"}\n')
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "adir").mkdir()
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "deep.yaml").write_text("a: " + "[" * 100_000)
    return tmp_path


CASES = [
    # hangs before: each of these read a FIFO (forever) or /dev/zero (forever, growing)
    (["batch", "fifo", "--out", "o.jsonl"], "question file is not a regular file"),
    (["batch", "/dev/zero", "--out", "o.jsonl"], "question file is not a regular file"),
    (["batch", "q.jsonl", "--out", "fifo", "--resume"], "is not a regular file"),
    (["eval", "jsonl", "fifo", "--out", "ev"], "question file is not a regular file"),
    (["calibrate", "--workflow", "direct", "--db", "cal.db", "--questions", "fifo"], "is not a regular file"),
    (
        ["run", "p.png", "What?", "--workflow", "direct", "--no-memory", "--calibration", "fifo"],
        "not a regular",
    ),
    (["bench", "make", "--out", "bm", "--n", "10000000000000000000000"], "less than or equal to 1000000"),
    # tracebacks before
    (["batch", "q.jsonl", "--out", "loop1"], "symlink loop"),
    (["batch", "q.jsonl", "--out", "adir", "--resume"], "is a folder"),
    (["eval", "jsonl", "q.jsonl", "--out", "p.png"], "is a file, not a folder"),
    (["graph", "show", "deep.yaml"], "nests too deeply"),
    (["memory", "ls", "--db", "loop1"], "leads nowhere"),
    (["memory", "search", "corners", "--db", "mem.db", "--embedder", ""], "--embedder is empty"),
    (["memory", "rm", "99999999999999999999999", "--db", "mem.db"], "less than or equal to"),
    (["memory", "export", "", "--db", "mem.db"], "path is empty"),
    (["calibrate", "--workflow", "direct", "--db", "cal.db", "--synthetic", "2", "--seed", "-1"], "--seed"),
    (["bench", "fixture", "--n", "1", "--worlds", "", "--out", "fx.md"], "names no world"),
    (["bench", "fixture", "--n", "1", "--seeds", "7,x", "--out", "fx.md"], "comma-separated non-negative"),
    (["bench", "fixture", "--n", "1", "--seeds", "7,7", "--out", "fx.md"], "names a seed twice"),
    (["call", "p.png", "What?", "--max-new-tokens", "100000000"], "less than or equal to 32768"),
    (["call", "p.png", "What \udcff?"], "not valid UTF-8"),
    (["run", "p.png", "What?", "--no-memory", "--options", "r\udcffd,blue"], "not valid UTF-8"),
    (["run", "--resume", "x\udcffy", "--no-memory"], "not valid UTF-8"),
    # silently accepted before
    (["run", "p.png", "What?", "--no-memory", "--method", "bogus"], "method"),
    (["run", "p.png", "What?", "--no-memory", "--options", ",,,"], "names no option"),
    (["run", "p.png", "What?", "--no-memory", "--options", "red,,blue"], "an option is empty"),
    (["call", "p.png", "What?", "--options", "red"], "is not a choice"),
    (["call", "p.png", "  "], "the question is empty"),
    (["memory", "search", "  ", "--db", "mem.db"], "the query is empty"),
    (["memory", "export", "mem.db", "--db", "mem.db"], "part of the memory being exported"),
    (["memory", "export", "p.png", "--db", "mem.db"], "exists: add --force"),
    (["run", "", "What?", "--no-memory"], "the image path is empty"),
    (["run", "p.png", "What?", "--no-memory", "--answer", "yes"], "give it with --resume"),
    (["chat", "--image", "missing.png"], "image file not found"),
    (["run", "p.png", "What?", "--no-memory", "--endpoint", "notaurl"], "is not a server URL"),
    (
        ["calibrate", "--workflow", "direct", "--db", "cal.db", "--synthetic", "2", "--out", "adir"],
        "adir cannot",
    ),
]


def _foveate(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    """The console script in this process, as a shell runs it (usage errors as one line): exit code and
    stderr."""
    monkeypatch.setattr(sys, "argv", ["foveate", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    code = ended.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("args", "said"), CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_a_wrong_argument_is_one_line_and_exit_2(
    place: Path,
    args: list[str],
    said: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = {p.name: p.read_bytes() for p in (place / "mem.db", place / "p.png")}
    code, err = _foveate(args, capsys, monkeypatch)
    assert code == 2, err
    assert said in err and "Traceback" not in err, err
    assert err.strip().count("\n") == 0, err
    assert {p.name: p.read_bytes() for p in (place / "mem.db", place / "p.png")} == before


def test_export_replaces_a_file_only_when_asked(place: Path) -> None:
    (place / "old.jsonl").write_text("mine\n")
    refused = runner.invoke(app, ["memory", "export", "old.jsonl", "--db", "mem.db"])
    assert refused.exit_code == 2 and (place / "old.jsonl").read_text() == "mine\n"
    forced = runner.invoke(app, ["memory", "export", "old.jsonl", "--db", "mem.db", "--force"])
    assert forced.exit_code == 0, forced.output
    assert "corners" in (place / "old.jsonl").read_text()
    with sqlite3.connect(place / "mem.db") as conn:  # the database is still a database
        assert conn.execute("SELECT count(*) FROM insights").fetchone()[0] == 1
    conn.close()


def test_bad_question_lines_are_reported_not_answered(place: Path) -> None:
    lines = [
        '{"image": "p.png", "question": "What colour?"}',
        '{"image": "p.png", "question": "   "}',
        '{"image": "p.png", "question": "Which?", "options": ["red"]}',
        '{"image": "p.png", "question": "Which?", "options": ["", "red"]}',
    ]
    (place / "bad.jsonl").write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["batch", "bad.jsonl", "--out", "o.jsonl", "--workflow", "direct"])
    assert result.exit_code == 0, result.output
    for lineno in (2, 3, 4):
        assert f"bad.jsonl:{lineno}:" in result.output
    assert len((place / "o.jsonl").read_text().splitlines()) == 1


AGENT_CASES = [
    ({"vlm": None}, "Agent(vlm=...) takes a VLM"),
    ({"vlm": "a-model-name"}, "Agent(vlm=...) takes a VLM"),
    ({"workflow": None}, "Agent(workflow=...)"),
    ({"budget": 100}, "Agent(budget=...) takes a TokenBudget"),
    ({"memory": 5}, "Agent(memory=...)"),
    ({"calibration": "x"}, "Agent(calibration=...)"),
    ({"checkpoints": 5}, "Agent(checkpoints=...)"),
    ({"registry": "x"}, "Agent(registry=...)"),
    ({"strategies": "x"}, "Agent(strategies=...)"),
    ({"adaptive": "no"}, "Agent(adaptive=...) takes True or False"),
    ({"max_options": 1}, "Agent(max_options=...)"),
]


@pytest.mark.parametrize(("change", "said"), AGENT_CASES, ids=[next(iter(c)) for c, _ in AGENT_CASES])
def test_an_agent_argument_of_the_wrong_kind_fails_at_construction(
    change: dict[str, object], said: str
) -> None:
    given: dict[str, object] = {
        "vlm": ScriptedVLM(),
        "workflow": "direct",
        "memory": None,
        "checkpoints": None,
    }
    with pytest.raises(FoveateError, match=said.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        Agent(**{**given, **change})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"options": "red,blue"}, "options are a list of strings, not str"),
        ({"options": {"a": 1, "b": 2}}, "not dict"),
        ({"options": 5}, "not int"),
        ({"run_id": 5}, "a run id is non-empty text"),
        ({"run_id": ""}, "a run id is non-empty text"),
        ({"truth_boxes": [[0, 0, float("inf"), 5]]}, "four finite numbers"),
        ({"truth_boxes": [[0, 0, 1]]}, r"a truth box is \(x0, y0, x1, y1\)"),
        ({"truth_boxes": "abcd"}, "not str"),
    ],
)
def test_a_question_argument_of_the_wrong_kind_is_refused_before_the_run(
    kwargs: dict[str, object], said: str
) -> None:
    vlm = ScriptedVLM()
    agent = Agent(vlm, workflow="direct", memory=None, checkpoints=None, budget=TokenBudget())
    with pytest.raises(FoveateError, match=said):
        agent.ask("Which?", image=PICTURE, **kwargs)  # type: ignore[arg-type]
    assert sum(vlm.calls.values()) == 0, "a question refused after its model calls were made"


def test_ask_many_takes_pairs_and_refuses_a_bad_concurrency() -> None:
    agent = Agent(ScriptedVLM(), workflow="direct", memory=None, checkpoints=None)
    answers = agent.ask_many([("What?", PICTURE), ("Which?", PICTURE, ["a", "b"])])
    assert len(answers) == 2
    with pytest.raises(FoveateError, match="max_concurrency"):
        agent.ask_many([("What?", PICTURE)], max_concurrency=0)
    with pytest.raises(FoveateError, match="tuples"):
        agent.ask_many("abc")  # type: ignore[arg-type]


def test_what_users_pass_from_numpy_pandas_and_iterators_still_works() -> None:
    """The checks refuse the wrong kinds, not the usual ones: a numpy array of options, numpy boxes, a
    zip of questions (a review of the checks found each refused at first)."""
    agent = Agent(ScriptedVLM(), workflow="direct", memory=None, checkpoints=None)
    answer = agent.ask("Which?", image=PICTURE, options=np.array(["a", "b"]))
    assert answer.text in {"a", "b"}
    boxed = agent.ask("Which?", image=PICTURE, options=["a", "b"], truth_boxes=[np.array([0, 0, 8, 8])])
    assert boxed.grounding is not None
    answers = agent.ask_many(zip(["What?", "Which?"], [PICTURE, PICTURE], [None, ["a", "b"]], strict=True))
    assert len(answers) == 2


def test_an_empty_endpoint_means_no_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from foveate.settings import load_settings

    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("FOVEATE_ENDPOINT", "")
    assert load_settings().endpoint is None
    monkeypatch.setenv("FOVEATE_ENDPOINT", " http://127.0.0.1:8000/v1 ")
    assert load_settings().endpoint == "http://127.0.0.1:8000/v1"


def test_the_options_setting_reaches_question_files(tmp_path: Path) -> None:
    from foveate.evaluation.datasets import read_question_file

    Image.fromarray(PICTURE).save(tmp_path / "p.png")
    line = {"image": "p.png", "question": "Which?", "options": [f"o{i}" for i in range(30)]}
    (tmp_path / "q.jsonl").write_text(json.dumps(line) + "\n")
    asked, problems = read_question_file(tmp_path / "q.jsonl", strict=False)
    assert not asked and "at most 26" in problems[0].error
    asked, problems = read_question_file(tmp_path / "q.jsonl", strict=False, max_options=40)
    assert len(asked) == 1 and not problems


def test_export_knows_the_memory_through_a_symlink(place: Path) -> None:
    (place / "link.db").symlink_to(place / "mem.db")
    before = (place / "mem.db").read_bytes()
    refused = runner.invoke(app, ["memory", "export", "mem.db", "--db", "link.db", "--force"])
    assert refused.exit_code == 2 and "part of the memory" in refused.output
    assert (place / "mem.db").read_bytes() == before


def test_storage_faults_in_a_run_are_left_for_resume() -> None:
    """A batch writes an error line for a question only when asking again cannot help; a full disk under
    the checkpoints or the memory is an OSError too, so the question waits for --resume."""
    from foveate.errors import CheckpointWriteError, MemoryWriteError, RunError

    assert issubclass(CheckpointWriteError, RunError) and issubclass(CheckpointWriteError, OSError)
    assert issubclass(MemoryWriteError, OSError)
