"""Every script in examples/ runs, offline, as a user would run it, and prints what it claims to.

Each example is a subprocess (``sys.executable examples/X.py``) with the network off and its memory,
caches and outputs in ``tmp_path``; the assertions read its real output and the files it wrote.
"""

from __future__ import annotations

import ast
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from foveate.conformal import SelectiveCalibration
from foveate.conformal.answer_gate import AnswerGate
from foveate.synthetic import COLORS

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TIMEOUT = 420  # seconds; each example takes well under a minute on an idle 2-core CPU


def run_example(tmp_path: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "FOVEATE_MEMORY_DB": str(tmp_path / "memory.db"),
        "FOVEATE_CACHE": str(tmp_path / "cache"),
        "FOVEATE_CALIBRATION_DB": str(tmp_path / "calibrations.db"),
        "FOVEATE_CHECKPOINTS": str(tmp_path / "runs.db"),
        "HOME": str(tmp_path / "home"),  # nothing may land in the real ~/.foveate
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr[-4000:]}"
    assert "Traceback" not in result.stderr
    return result.stdout


def line(stdout: str, prefix: str) -> str:
    """The rest of the first line starting with ``prefix``."""
    found = [x[len(prefix) :] for x in stdout.splitlines() if x.startswith(prefix)]
    assert found, f"no line starting with {prefix!r} in:\n{stdout}"
    return found[0]


def test_examples_readme_lists_every_example() -> None:
    readme = (EXAMPLES / "README.md").read_text()
    scripts = [*sorted(p.name for p in EXAMPLES.glob("*.py")), "custom_workflow.yaml"]
    assert len(scripts) >= 6
    for name in scripts:
        assert name in readme, f"examples/README.md does not mention {name}"
    tested = Path(__file__).read_text()
    for name in scripts:
        assert f'"{name}"' in tested, f"{name} has no test here"


def test_quickstart(tmp_path: Path) -> None:
    out = ok(run_example(tmp_path, "quickstart.py"))
    options = ast.literal_eval(line(out, "image: ").split("options: ")[1])
    assert line(out, "answer: ") in options
    assert 0.0 < float(line(out, "confidence: ")) <= 1.0
    visual = int(line(out, "tokens: ").split()[0])
    assert visual > 0
    trace = [x.strip().split(":")[0] for x in out.split("trace:\n")[1].splitlines() if x.startswith("  ")]
    # the judge may send the search back for a second look (zoom, reason, judge again) before the end
    assert trace[:5] == ["perceive", "recall", "zoom", "reason", "judge"], trace
    assert trace[-2:] == ["abstain", "remember"], trace
    looks = len(trace[5:-2]) // 3
    assert trace[5:-2] == ["zoom", "reason", "judge"] * looks, trace
    assert "feedback: the right answer is" in out
    # the memory went where FOVEATE_MEMORY_DB points, and the run carries the feedback
    with sqlite3.connect(tmp_path / "memory.db") as db:
        rows = db.execute("SELECT question, correct FROM runs").fetchall()
    assert len(rows) == 1 and rows[0][0] in out and rows[0][1] is not None
    assert not (tmp_path / "home" / ".foveate").exists()


def test_custom_workflow(tmp_path: Path) -> None:
    out = ok(run_example(tmp_path, "custom_workflow.py"))
    assert "workflow 'careful_zoom': 4 nodes, start at 'zoom', max 12 steps" in out
    mermaid = out[out.index("flowchart TD") :]
    assert mermaid.startswith("flowchart TD\n    __start__([START])\n")
    assert '    n_judge -->|"verdict: retry"| n_zoom\n' in mermaid
    assert re.search(
        r"a broken copy is rejected: .*broken\.yaml:\d+: node 'judge' \(judge\) params: threshold", out
    )
    question = out[out.index("\nQ: ") :]
    options = ast.literal_eval(question.splitlines()[1].split("?", 1)[1].strip())
    nodes = re.findall(r"^  \[(\w+)\] ", question, flags=re.M)
    # the judge was unsure, sent the run back to zoom, which escalated to ZoomEye's search
    assert nodes == ["zoom", "reason", "judge", "zoom", "reason", "judge", "abstain"]
    assert "[zoom] fast search" in question and "[zoom] zoomeye search" in question
    assert "[judge] retry" in question
    assert line(question.lstrip("\n"), "answer: ").split()[0] in options


def test_custom_workflow_rejects_a_broken_file_with_its_line(tmp_path: Path) -> None:
    text = (EXAMPLES / "custom_workflow.yaml").read_text().replace("uses: judge", "uses: jugde")
    broken = tmp_path / "flow.yaml"
    broken.write_text(text)
    lineno = text.splitlines().index("    uses: jugde") + 1
    result = run_example(tmp_path, "custom_workflow.py", str(broken))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"flow.yaml:{lineno}: node 'judge' uses unknown node type 'jugde'" in result.stderr


def test_custom_node(tmp_path: Path) -> None:
    out = ok(run_example(tmp_path, "custom_node.py"))
    assert "with the built-in registry: <string>:6: node 'size' uses unknown node type 'size_note'" in out
    registered = line(out, "registered: ")
    assert "'double_check'" in registered and "'size_note'" in registered and "'image_is'" in registered
    assert '    n_size -->|"image_is: large"| n_zoom\n' in out
    assert '    n_check["check<br/>double_check"]\n' in out
    large, small = out.split("\nQ: ")[1:]
    for block, kind in ((large, "large"), (small, "small")):
        options = ast.literal_eval(block.splitlines()[0].split("?", 1)[1].split("(right")[0].strip())
        nodes = re.findall(r"^  \[(\w+)\] ", block, flags=re.M)
        expected = ["size_note", "zoom", "reason", "double_check", "abstain"]
        assert nodes == (expected if kind == "large" else [n for n in expected if n != "zoom"])
        assert re.search(rf"\[size_note\] the image is \d+x\d+ px \({kind}\)", block)
        assert re.search(r"\[double_check\] whole image (agrees|disagrees)", block)
        answer = line(block, "answer: ").split()[0]
        assert answer in options
        assert f"blended answer '{answer}'" in block  # the double check's answer is the one given
        assert int(line(block, "answer: ").split("tokens: ")[1].split()[0]) > 0


def test_calibrate_your_own(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    out = ok(run_example(tmp_path, "calibrate_your_own.py", "--out", str(folder), "--alpha", "0.1"))
    rows = [json.loads(x) for x in (folder / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 52 and all((folder / r["image"]).is_file() for r in rows)
    assert all(r["answer"] in r["options"] for r in rows)
    gate = AnswerGate.from_json((folder / "gate.json").read_text())
    assert (
        gate.method == "crc" and gate.alpha == 0.1 and gate.key is not None and gate.key.workflow == "direct"
    )
    assert gate.calibrated_on == {"options": 40, "free_text": 40}
    assert gate.options is not None and gate.free_text is not None
    for cal in (gate.options, gate.free_text):
        assert isinstance(cal, SelectiveCalibration) and cal.n == 40
        assert f"answer when confidence > {cal.threshold:.3f}" in out
        # CRC's finite-sample rule on the calibration answers themselves: (wrong + 1) / (n + 1) <= alpha
        assert (cal.wrong + 1) / (cal.n + 1) <= cal.alpha
    summary = re.search(r"new answers: answered (\d+)/24, (\d+) of them right; abstained (\d+)", out)
    assert summary is not None
    answered, right, abstained = map(int, summary.groups())
    assert answered + abstained == 24 and right <= answered
    decisions = re.findall(r"^  .*? -> (answered|abstained)", out, flags=re.M)
    assert len(decisions) == 24 and decisions.count("abstained") == abstained
    # every abstention is the loaded gate's: the confidence is at or below the saved threshold of its form
    cuts = {f"{gate.options.threshold:.3f}", f"{gate.free_text.threshold:.3f}"}
    found = re.findall(
        r"(?:top probability|free-text confidence) ([\d.]+) <= calibrated threshold ([\d.]+)", out
    )
    for confidence, threshold in found:
        assert float(confidence) <= float(threshold) and threshold in cuts
    assert len(found) == abstained


def test_vllm_server_offline_starts_and_stops_a_local_server(tmp_path: Path) -> None:
    out = ok(run_example(tmp_path, "vllm_server.py"))
    url = line(out, "server: ").split()[0]
    port = int(re.fullmatch(r"http://127\.0\.0\.1:(\d+)/v1", url).group(1))  # type: ignore[union-attr]
    assert line(out, "question: ").startswith("What is the color of the")
    assert line(out, "answer: ").split()[0] in COLORS  # a free-text answer generated over HTTP
    assert int(line(out, "tokens: ").split()[0]) > 0
    assert "scored options need logprobs:" in out and "--max-logprobs" in out
    assert out.rstrip().endswith("server stopped")
    with socket.socket() as s, pytest.raises(OSError):  # the server is gone
        s.settimeout(2.0)
        s.connect(("127.0.0.1", port))


def test_vllm_server_with_a_dead_endpoint_says_so_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (64, 64)).save(image)
    result = run_example(
        tmp_path,
        "vllm_server.py",
        *("--endpoint", f"http://127.0.0.1:{port}/v1", "--model", "m", "--image", str(image)),
        *("--question", "What is it?", "--workflow", "direct"),
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot reach the model server")


def test_custom_strategy(tmp_path: Path) -> None:
    """A strategy written outside the package, registered on a copy of the registry, searches from Python
    and from a workflow YAML."""
    out = ok(run_example(tmp_path, "custom_strategy.py"))
    assert "existence_first" in line(out, "strategies:").strip().split(", ")
    right, probes = re.match(r" (\d)/6 right, ([\d.]+) probes", line(out, "existence_first:")).groups()  # type: ignore[union-attr]
    zoomeye = float(re.search(r"([\d.]+) probes", line(out, "zoomeye:"))[1])  # type: ignore[index]
    assert int(right) >= 4 and 0 < float(probes) < zoomeye
    assert "existence_first search:" in line(out, "trace:")
    assert re.match(r" \w+ \(right: \w+\); [1-9]\d* probes", line(out, "workflow answer:"))


def test_custom_family(tmp_path: Path) -> None:
    """A family declared outside the package: by name, by the folder's config, and for a served model."""
    out = ok(run_example(tmp_path, "custom_family.py"))
    assert line(out, "model_type:").startswith(" family qwen2_5_vl,")
    named = line(out, "named:")
    assert "family my-qwen-finetune" in named and "writes False" in named and "stop threshold 0.8" in named
    assert line(out, "from its config:") == " family my-qwen-finetune"
    assert "Does this crop show a red car?" in line(out, "zoom probes ask:")
    assert "relevance maps False" in line(out, "served:")
