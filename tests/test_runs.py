"""``foveate runs``: runs read off the checkpoint database without a model, killed ones included.

The status read from raw checkpoints (``foveate.graphs.runs``) is checked against ``Workflow.output``, which
asks the compiled graph, for a finished, a crashed and a paused run, in each kind of checkpointer."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver

from foveate.conformal import SelectiveCalibration
from foveate.errors import RunError
from foveate.graphs.nodes import builtin_registry
from foveate.graphs.runs import list_runs, read_run
from foveate.graphs.services import Services
from foveate.graphs.state import RunInput
from foveate.graphs.workflow import Workflow, open_checkpointer
from foveate.memory import InsightMemory, SentenceTransformerEmbedder
from foveate.synthetic import generate_scene
from foveate.tiny_vlm import TINY_VLM_PATH
from foveate.vlm.transformers_vlm import TransformersVLM

ANSWER_NONE = SelectiveCalibration(method="crc", alpha=0.2, n=100, threshold=math.inf, answered=0, wrong=0)
PG_URL = os.environ.get("FOVEATE_TEST_DATABASE_URL")

FLOWS = {
    "straight": "name: straight\nstart: reason\nnodes:\n  reason: {uses: reason}\n"
    "edges:\n  - {from: reason, to: END}\n",
    "asking": "name: asking\nstart: reason\nnodes:\n  reason: {uses: reason}\n"
    "  abstain: {uses: abstain, params: {ask_human: true}}\n"
    "edges:\n  - {from: reason, to: abstain}\n  - {from: abstain, to: END}\n",
    "crashing": "name: crashing\nstart: reason\nnodes:\n  reason: {uses: reason}\n  boom: {uses: boom}\n"
    "  abstain: {uses: abstain}\nedges:\n  - {from: reason, to: boom}\n  - {from: boom, to: abstain}\n"
    "  - {from: abstain, to: END}\n",
}


def _boom(params: object, services: object) -> Any:
    def node(state: object) -> dict[str, Any]:
        raise RuntimeError("the machine went away")

    return node


def _question(index: int) -> RunInput:
    image, item = generate_scene(7, index)
    return RunInput(image=image, question=item.question, options=item.options)


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def saver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseCheckpointSaver[Any]]:
    if request.param == "postgresql" and not PG_URL:
        pytest.skip("no PostgreSQL")
    target = {"sqlite": str(tmp_path / "runs.db"), "memory": None, "postgresql": PG_URL}[request.param]
    with open_checkpointer(target) as opened:
        yield opened


def test_runs_are_read_as_the_graph_sees_them(
    vlm: TransformersVLM, saver: BaseCheckpointSaver[Any], tmp_path: Path
) -> None:
    registry = builtin_registry().copy()
    registry.node("boom")(_boom)
    flows = {}
    for name, text in FLOWS.items():
        (tmp_path / f"{name}.yaml").write_text(text)
        services = Services(vlm=vlm, calibration=ANSWER_NONE)
        flows[name] = Workflow(
            tmp_path / f"{name}.yaml", services, registry=registry, checkpointer=saver, image_cache=tmp_path
        )
    done = flows["straight"].run(_question(0))
    waiting = flows["asking"].run(_question(1))
    with pytest.raises(RuntimeError, match="went away"):
        flows["crashing"].run(_question(2), run_id="crashed-1")
    ids = {"straight": done.run_id, "asking": waiting.run_id, "crashing": "crashed-1"}

    listed = {s.run_id: s for s in list_runs(saver, limit=None)}
    assert set(ids.values()) <= set(listed)
    for name, run_id in ids.items():
        flow, summary = flows[name], listed[run_id]
        graph_says = flow.output(run_id)
        assert summary.status == graph_says.status, name
        assert summary.next == list(flow.graph.get_state(flow.config(run_id)).next), name
        assert (
            summary.workflow == str((tmp_path / f"{name}.yaml").resolve()) and summary.model == vlm.model_id
        )
        assert summary.question == graph_says.question and summary.tokens == graph_says.usage
        _, read = read_run(saver, run_id)
        assert read == graph_says  # the same answer, messages, pending question, usage
    assert [listed[i].status for i in ids.values()] == ["done", "waiting", "incomplete"]
    assert listed["crashed-1"].next == ["boom"]
    # newest first, and the limit counts runs (not checkpoints)
    assert [s.run_id for s in list_runs(saver, limit=2)] == ["crashed-1", waiting.run_id]
    with pytest.raises(RunError, match="no run 'nope'"):
        read_run(saver, "nope")
    # a pause is not a node: streaming a run that pauses yields the nodes that ran, no "__interrupt__"
    streamed = [event.node for event in flows["asking"].stream(_question(3))]
    assert streamed == ["reason"]


def _foveate(*args: str, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "foveate.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_killed_run_is_listed_and_the_printed_command_finishes_it(tmp_path: Path) -> None:
    """SIGKILL leaves no chance to print anything: the id printed first, `foveate runs` and the command it
    prints are how the run is found and finished (issue 26, item 4)."""
    env = {**os.environ, "HOME": str(tmp_path), "FOVEATE_CONFIG": str(tmp_path / "none.toml")}
    image, item = generate_scene(4, 0, size_range=(1800, 2000))
    image.save(tmp_path / "scene.png")
    store = str(tmp_path / "my runs.db")
    command = [sys.executable, "-m", "foveate.cli.main", "run", str(tmp_path / "scene.png"), item.question]
    command += [
        "--options",
        ",".join(item.options),
        "--workflow",
        "zoom",
        "--no-memory",
        "--checkpoints",
        store,
    ]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("run "), first
    run_id = first.split()[1]
    assert proc.stdout.readline().strip()  # the first node finished, and its checkpoint is on disk
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    listed = _foveate("runs", "--checkpoints", store, env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(run_id))
    assert "incomplete" in row and "zoom" in row
    hint = next(line for line in listed.stdout.splitlines() if line.startswith(f"{run_id}: "))
    printed = hint.split("`")[1]
    assert printed == f"foveate run --resume {run_id} --checkpoints '{store}'"
    shown = _foveate("runs", run_id, "--checkpoints", store, env=env)
    assert shown.returncode == 0 and item.question in shown.stdout and printed in shown.stdout

    # the printed command, as a shell would split it; the zoom workflow is read from the checkpoint
    import shlex

    words = shlex.split(printed)
    assert words[:2] == ["foveate", "run"]
    resumed = _foveate(*words[1:], env=env)
    assert resumed.returncode == 0, resumed.stderr
    # finished: an answer, or the shipped gate's abstention
    outcome = "answer:" in resumed.stdout or "abstained:" in resumed.stdout
    assert outcome and f"run {run_id}" in resumed.stdout
    as_json = _foveate("runs", "--checkpoints", store, "--json", env=env)
    assert f'"run_id":"{run_id}","status":"done"' in as_json.stdout


def test_runs_without_a_database_says_where_it_looked(tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "FOVEATE_CONFIG": str(tmp_path / "none.toml")}
    out = _foveate("runs", env=env, timeout=120)
    assert out.returncode == 2 and "no checkpoint database at" in out.stderr and "runs.db" in out.stderr
    assert not (tmp_path / ".foveate" / "runs.db").exists()  # looking created nothing


def test_feedback_and_json_from_the_command_line(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> None:
    """`foveate run --json` gives the Answer model's fields; `foveate feedback` records the outcome in the
    memory, for the workflow the run started with; `memory ls --json` reads it back."""
    import json

    from foveate.agent import Answer

    env = {**os.environ, "HOME": str(tmp_path), "FOVEATE_CONFIG": str(tmp_path / "none.toml")}
    image, item = generate_scene(7, 0)
    image.save(tmp_path / "scene.png")
    stores = ["--checkpoints", str(tmp_path / "runs.db"), "--memory", str(tmp_path / "memory.db")]
    ran = _foveate(
        "run", str(tmp_path / "scene.png"), item.question, "--options", ",".join(item.options),
        "--workflow", "direct", "--no-gate", "--json", *stores, env=env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert len(ran.stdout.splitlines()) == 1  # the JSON object and nothing else on stdout
    answer = Answer.model_validate_json(ran.stdout)
    assert answer.workflow == "direct" and answer.option in item.options and answer.status == "done"
    assert ran.stderr.startswith(f"run {answer.run_id}")  # the id still comes first, on stderr

    said = _foveate("feedback", answer.run_id, "--answer", item.answer, *stores, env=env)
    assert said.returncode == 0, said.stderr
    right = answer.option == item.answer
    assert f"run {answer.run_id}: {'right' if right else 'wrong'}, recorded as memory run" in said.stdout
    memory_run = int(said.stdout.split("memory run ")[1].split()[0])
    with InsightMemory.open(tmp_path / "memory.db", embedder=minilm, read_only=True) as memory:
        stored = memory.get_run(memory_run)
    assert stored is not None and stored.correct is right and stored.question == item.question

    listed = _foveate("memory", "ls", "--db", str(tmp_path / "memory.db"), "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert rows and all({"id", "text", "kind"} <= set(row) for row in rows)  # the lesson written

    again = _foveate("feedback", "no-such-run", "--wrong", *stores, env=env)
    assert again.returncode == 2 and "no run 'no-such-run'" in again.stderr


def test_a_run_prints_only_its_own_lines(tmp_path: Path) -> None:
    """No third-party progress bars ("Loading weights: 100%|...") or library warnings in foveate's output:
    with --json, stdout is the answer and stderr holds the run id and one line per node, nothing else."""
    import json

    env = {**os.environ, "HOME": str(tmp_path), "FOVEATE_CONFIG": str(tmp_path / "none.toml")}
    env["PYTHONWARNINGS"] = "always"  # a library warning, if any is raised, would show
    image, item = generate_scene(7, 1)
    image.save(tmp_path / "scene.png")
    ran = _foveate(
        "run", str(tmp_path / "scene.png"), item.question, "--options", ",".join(item.options), "--json",
        "--checkpoints", str(tmp_path / "runs.db"), "--memory", str(tmp_path / "memory.db"), env=env,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    json.loads(ran.stdout)
    nodes = ("perceive", "recall", "zoom", "reason", "judge", "abstain", "remember")
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("run ")
    strays = [line for line in lines[1:] if not line.startswith(nodes)]  # one line per node
    assert not strays, ran.stderr


def test_a_run_goes_on_only_with_its_own_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dirs: dict[str, Path]
) -> None:
    """`--resume` and `feedback` read the model a run was answered by; another one is refused by name (its
    answers, lessons and gate would mix two models). `--json` with `--ask` is refused: the prompt would
    share stdout with the JSON."""
    from typer.testing import CliRunner

    from foveate.cli.main import app

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    image, item = generate_scene(7, 2)
    image.save(tmp_path / "scene.png")
    stores = ["--checkpoints", str(tmp_path / "runs.db"), "--memory", str(tmp_path / "memory.db")]
    first = CliRunner().invoke(
        app, ["run", str(tmp_path / "scene.png"), item.question, "--workflow", "direct", "--json", *stores]
    )
    assert first.exit_code == 0, first.output
    run_id = json.loads(first.stdout)["run_id"]
    other = str(tiny_model_dirs["llava"])
    for args in (["run", "--resume", run_id], ["feedback", run_id, "--right"]):
        refused = CliRunner().invoke(app, [*args, *stores, "--model", other])
        assert refused.exit_code == 2 and f"was answered by {TINY_VLM_PATH}, not {other}" in refused.stderr
    again = CliRunner().invoke(app, ["run", "--resume", run_id, *stores])  # its own model: fine
    assert again.exit_code == 0, again.output
    both = CliRunner().invoke(app, ["run", str(tmp_path / "scene.png"), "q?", "--json", "--ask", *stores])
    assert both.exit_code == 2 and "--ask" in both.stderr
