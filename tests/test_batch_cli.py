"""``foveate batch``: killed with SIGKILL and resumed, every question is answered exactly once; bad lines are
reported by number and the rest answered; many in flight give the same answers as one at a time. And the
two parts under it: the resumable results file and the bounded pool."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from foveate.cli.main import app
from foveate.errors import ManifestError
from foveate.evaluation.pool import run_bounded
from foveate.evaluation.results_file import ResultsFile
from foveate.synthetic.formats import write_jsonl

runner = CliRunner()
SIZE = (512, 640)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    return {**os.environ, "HOME": str(tmp_path / "home"), "FOVEATE_CONFIG": str(tmp_path / "none.toml")}


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def test_sigkill_then_resume_answers_every_question_exactly_once(tmp_path: Path, env: dict[str, str]) -> None:
    questions = write_jsonl(tmp_path / "q" / "questions.jsonl", 16, seed=6, size_range=SIZE)
    out = tmp_path / "answers.jsonl"
    command = [sys.executable, "-m", "foveate.cli.main", "batch", str(questions), "--out", str(out)]
    command += ["--workflow", "zoom", "--concurrency", "2"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and (not out.exists() or len(_ids(out)) < 3):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-run: questions in flight, more still to start
    proc.wait()
    killed_at = len(_ids(out))
    assert 3 <= killed_at < 16
    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{killed_at} already in" in resumed.stdout
    ids = _ids(out)
    assert sorted(ids) == sorted(f"scene-6-{i:05d}" for i in range(16))  # all, and each once


def test_bad_lines_are_reported_by_number_and_the_rest_answered(tmp_path: Path, env: dict[str, str]) -> None:
    questions = write_jsonl(tmp_path / "questions.jsonl", 3, seed=2, size_range=SIZE)
    (tmp_path / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    lines = questions.read_text().splitlines()
    lines.insert(1, '{"image": "images/scene-2-00000.png"')  # cut short
    lines.append(json.dumps({"id": "broken", "image": "images/broken.png", "question": "What is it?"}))
    questions.write_text("\n".join(lines) + "\n")
    out = tmp_path / "answers.jsonl"
    result = runner.invoke(app, ["batch", str(questions), "--out", str(out), "--workflow", "direct"])
    assert result.exit_code == 0, result.output
    assert f"{questions}:2: not JSON" in result.output
    answers = {json.loads(line)["id"]: json.loads(line) for line in out.read_text().splitlines()}
    assert set(answers) == {"scene-2-00000", "scene-2-00001", "scene-2-00002", "broken"}
    assert answers["broken"]["error"] and "broken.png" in answers["broken"]["error"]
    assert all(answers[k]["option"] for k in answers if k != "broken")
    again = runner.invoke(app, ["batch", str(questions), "--out", str(out)])
    assert again.exit_code == 2 and "--resume" in again.output  # never overwritten


def test_many_in_flight_give_the_answers_of_one_at_a_time(tmp_path: Path, env: dict[str, str]) -> None:
    questions = write_jsonl(tmp_path / "questions.jsonl", 8, seed=8, size_range=SIZE)
    outs = {}
    for n in ("1", "8"):
        outs[n] = tmp_path / f"a{n}.jsonl"
        args = ["batch", str(questions), "--out", str(outs[n]), "-w", "zoom", "--concurrency", n]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    one, many = ({json.loads(x)["id"]: json.loads(x) for x in outs[n].read_text().splitlines()} for n in "18")
    assert set(one) == set(many) and len(one) == 8
    for key, answer in one.items():
        assert many[key]["option"] == answer["option"]
        assert many[key]["confidence"] == pytest.approx(answer["confidence"], abs=1e-5)
        assert many[key]["total_tokens"] == answer["total_tokens"]


# ------------------------------------------------------------------ the results file
def _file(path: Path) -> ResultsFile:
    return ResultsFile(path, lambda line: str(line["id"]))


def test_results_file_cuts_a_partial_last_line_and_refuses_a_corrupt_one(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with _file(path) as results:
        results.open(resume=False)
        for i in range(3):
            results.write({"id": i})
    path.write_bytes(path.read_bytes() + b'{"id": 3, "ans')  # killed mid-write
    with _file(path) as results:
        assert results.done(results.open(resume=True)) == {"0", "1", "2"}
        results.write({"id": 3})
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [0, 1, 2, 3]
    path.write_text('{"id": 0}\n{"id" 1}\n{"id": 2}\n')
    before = path.read_bytes()
    with pytest.raises(ManifestError, match=r"r.jsonl:2"), _file(path) as results:
        results.open(resume=True)
    assert path.read_bytes() == before  # never rewritten past a line it cannot read
    with pytest.raises(ManifestError, match="exists"), _file(path) as results:
        results.open(resume=False)


def test_pool_keeps_at_most_n_in_flight_and_hands_back_errors() -> None:
    lock = threading.Lock()
    running = peak = 0

    def work(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1
        if i == 5:
            raise ValueError("five")
        return i * i

    got: dict[int, Any] = {}
    run_bounded(range(20), work, lambda i, r: got.__setitem__(i, r), concurrency=3)
    assert peak == 3 and len(got) == 20
    assert isinstance(got[5], ValueError) and got[4] == 16
    serial: dict[int, Any] = {}
    run_bounded(range(4), work, lambda i, r: serial.__setitem__(i, r), concurrency=1)
    assert serial == {0: 0, 1: 1, 2: 4, 3: 9}


def test_shards_split_a_file_into_disjoint_parts(tmp_path: Path, env: dict[str, str]) -> None:
    questions = write_jsonl(tmp_path / "questions.jsonl", 5, seed=9, size_range=SIZE)
    got = []
    for k in range(2):
        out = tmp_path / f"part-{k}.jsonl"
        args = ["batch", str(questions), "--out", str(out), "-w", "direct", "--shard", f"{k}/2"]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        got.append(_ids(out))
    assert sorted(got[0]) == [f"scene-9-{i:05d}" for i in (0, 2, 4)]
    assert sorted(got[1]) == [f"scene-9-{i:05d}" for i in (1, 3)]
    bad = runner.invoke(app, ["batch", str(questions), "--out", str(tmp_path / "x.jsonl"), "--shard", "2/2"])
    assert bad.exit_code == 2 and "--shard is K/N" in bad.output
