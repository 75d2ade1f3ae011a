"""``foveate chat``: the REPL driven in tmux like a person would, and its class driven line by line.

The tmux test is the one that proves the whole thing (prompt_toolkit on a real terminal, the model, the
exit code); the class tests pin down parsing, one-line errors, abstention and the pause for a person on
the real tiny VLM, printing to a ``StringIO``.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from rich.console import Console
from terminal import needs_tmux, terminal

from foveate.agent import Agent
from foveate.cli.repl import COMMANDS, ChatREPL, SlashCompleter, history_path, parse_budget, parse_question
from foveate.conformal import SelectiveCalibration
from foveate.errors import FoveateError
from foveate.memory import InsightMemory, SentenceTransformerEmbedder
from foveate.synthetic import generate_scene
from foveate.vlm.transformers_vlm import TransformersVLM

VENV_BIN = Path(sys.executable).parent


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, highlight=False, soft_wrap=True), out


def _no_model(calls: list[str]):  # type: ignore[no-untyped-def]
    def factory(workflow: str | Path) -> Agent:
        calls.append(str(workflow))
        raise FoveateError("no model in this test")

    return factory


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], str]:
    image, item = generate_scene(7, 0)
    path = tmp_path_factory.mktemp("scene") / "scene.png"
    image.save(path)
    return path, list(item.options), item.question


# ------------------------------------------------------------------ parsing, errors, completion (no model)
def test_inline_options_and_budget_parse() -> None:
    assert parse_question("What colour is it? [red, green , blue]") == (
        "What colour is it?",
        ["red", "green", "blue"],
    )
    assert parse_question("  what is left of the star?  ") == ("what is left of the star?", None)
    assert parse_question("[a, b]") == ("[a, b]", None)  # brackets alone are not a question
    assert parse_budget("1200") == 1200 and parse_budget("off") is None
    for bad in ("abc", "0", "-5", "1.5", ""):
        with pytest.raises(FoveateError, match="positive whole number"):
            parse_budget(bad)


def test_errors_print_one_line_each_and_the_loop_goes_on(tmp_path: Path, scene) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = scene
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("name: x\nstart: [unclosed\n")
    calls: list[str] = []
    console, out = _console()
    repl = ChatREPL(console, _no_model(calls))
    bad_lines = [
        "What colour is the square?",  # no image loaded yet
        f"/image {tmp_path / 'missing.png'}",
        f"/image {corrupt}",
        f"/workflow {bad_yaml}",
        "/workflow nosuchflow",
        "/budget abc",
        "/budget 0",
        "/options onlyone",
        "/feedback maybe",
        "/feedback right",  # nothing asked yet
        "/why",
        "/show",
        "/answer",
        "/frobnicate",
    ]
    for line in bad_lines:
        assert repl.handle(line) is True
    lines = out.getvalue().splitlines()
    assert len(lines) == len(bad_lines), lines
    assert all(line.startswith("error: ") for line in lines), lines
    text = out.getvalue()
    assert "Traceback" not in text and calls == []  # refused before any model work
    assert "no image yet" in lines[0] and "missing.png" in lines[1] and "corrupt.png" in lines[2]
    assert "bad.yaml" in lines[3] and "nosuchflow" in lines[4]
    assert "/budget takes a positive whole number of tokens or 'off', not 'abc'" in lines[5]
    assert "unknown command /frobnicate" in lines[-1]
    assert repl.max_total_tokens is None and repl.images == []  # nothing changed by the refused lines

    out.truncate(0), out.seek(0)
    for line in ("/budget 500", "/options a, b ,c", f"/image {path}", f"/image {path}", "/workflow zoom"):
        repl.handle(line)
    text = out.getvalue()
    assert repl.max_total_tokens == 500 and "budget: 500 tokens per question" in text
    assert repl.options == ["a", "b", "c"] and repl.images == [path, path]
    assert "2 images loaded; questions are asked about the last one" in text
    assert repl.workflow == "zoom" and "workflow: zoom" in text
    repl.handle("/budget off"), repl.handle("/options off")
    assert repl.max_total_tokens is None and repl.options is None
    repl.handle("/help")
    assert all(name in out.getvalue() for name in COMMANDS)
    assert repl.handle("/quit") is False and repl.handle("/QUIT") is False
    assert calls == []


def test_completer_and_history_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    completer = SlashCompleter()

    def complete(text: str) -> list[str]:
        return [c.text for c in completer.get_completions(Document(text), CompleteEvent())]

    assert complete("/bu") == ["/budget"]
    assert set(complete("/")) == set(COMMANDS)
    assert complete("/workflow z") == ["zoom"] and complete("/feedback w") == ["wrong"]
    (tmp_path / "scene_one.png").write_bytes(b"")
    assert "one.png" in complete(f"/image {tmp_path}/scene_")
    assert complete("what colour") == []
    monkeypatch.setenv("FOVEATE_CHAT_HISTORY", str(tmp_path / "h"))
    assert history_path() == tmp_path / "h"


# ------------------------------------------------------------------ on the real tiny VLM
@pytest.fixture
def memory(tmp_path: Path, minilm: SentenceTransformerEmbedder) -> Iterator[InsightMemory]:
    with InsightMemory.open(tmp_path / "memory.db", embedder=minilm) as mem:
        yield mem


def _repl(
    vlm: TransformersVLM, memory: InsightMemory, traces: Path, **agent_kw: object
) -> tuple[ChatREPL, io.StringIO]:
    """A REPL on the shared tiny VLM (loading it once per module keeps the tests fast)."""
    console, out = _console()

    def factory(workflow: str | Path) -> Agent:
        return Agent(vlm, workflow=workflow, memory=memory, **agent_kw)  # type: ignore[arg-type]

    return ChatREPL(console, factory, trace_dir=traces), out


def test_ask_why_show_feedback_memory(
    tmp_path: Path,
    vlm: TransformersVLM,
    memory: InsightMemory,
    scene,  # type: ignore[no-untyped-def]
) -> None:
    path, options, question = scene
    repl, out = _repl(vlm, memory, tmp_path / "traces")
    repl.handle(f"/image {path}")
    repl.handle(f"{question} [{', '.join(options)}]")
    text = out.getvalue()
    assert "zoom" in text and "reason" in text  # the per-node progress lines (not a terminal)
    match = re.search(r"^answer: (\S+)  \(confidence (\d\.\d\d), (\d+) tokens", text, re.M)
    assert match, text
    assert match[1] in options and int(match[3]) > 0 and repl.last is not None
    assert repl.options is None  # inline options are for that question only

    out.truncate(0), out.seek(0)
    repl.handle("/why")
    why = out.getvalue()
    for needle in ("crops visited", "option probabilities", "prediction set", "abstention gate", "recalled"):
        assert needle in why, why
    assert re.search(r"answered from crop \[\d+, \d+, \d+, \d+\]", why), why

    out.truncate(0), out.seek(0)
    repl.handle("/show")
    shown = Path(out.getvalue().strip().rsplit(": ", 1)[-1])
    assert shown.is_file() and shown.suffix == ".png"
    with Image.open(shown) as picture, Image.open(path) as original:
        assert picture.size == original.size

    out.truncate(0), out.seek(0)
    other = next(o for o in options if o != match[1])
    repl.handle(f"/feedback wrong {other}")
    assert "recorded run" in out.getvalue() and "as wrong" in out.getvalue(), out.getvalue()
    (run,) = memory.runs()
    assert run.correct is False and len(memory) >= 1
    out.truncate(0), out.seek(0)
    repl.handle("/memory")
    assert f"memory: {len(memory)} insights" in out.getvalue()
    repl.close()


def test_abstention_offers_the_candidate_and_takes_the_right_answer(
    tmp_path: Path,
    vlm: TransformersVLM,
    memory: InsightMemory,
    scene,  # type: ignore[no-untyped-def]
) -> None:
    path, options, question = scene
    never = SelectiveCalibration(method="crc", alpha=0.1, n=100, threshold=1.0, answered=0, wrong=0)
    repl, out = _repl(vlm, memory, tmp_path / "traces", calibration=never)
    repl.handle(f"/image {path}")
    repl.handle("/workflow zoom")
    repl.handle(f"/options {','.join(options)}")
    repl.handle(question)
    text = out.getvalue()
    assert "abstained:" in text and "/answer-anyway" in text and "answer: " not in text, text
    assert repl.last is not None and repl.last.abstained and repl.last.reason in text
    out.truncate(0), out.seek(0)
    repl.handle("/answer-anyway")
    assert f"the model's candidate: {repl.last.option}" in out.getvalue()
    right = next(o for o in options if o != repl.last.option)
    repl.handle(f"/answer {right}")
    assert f"recorded '{right}' as the right answer" in out.getvalue()
    (run,) = memory.runs()
    assert run.correct is False
    repl.handle("/why")
    assert "threshold 1" in out.getvalue() and "abstained: " in out.getvalue()
    repl.close()


def test_a_run_that_pauses_for_a_person_is_resumed_with_their_answer(
    tmp_path: Path,
    vlm: TransformersVLM,
    memory: InsightMemory,
    scene,  # type: ignore[no-untyped-def]
) -> None:
    path, options, question = scene
    flow = tmp_path / "ask_me.yaml"
    flow.write_text(
        "name: ask_me\nstart: reason\nnodes:\n  reason: {uses: reason}\n"
        "  abstain: {uses: abstain, params: {ask_human: true}}\n"
        "edges:\n  - {from: reason, to: abstain}\n  - {from: abstain, to: END}\n"
    )
    never = SelectiveCalibration(method="crc", alpha=0.1, n=100, threshold=1.0, answered=0, wrong=0)
    repl, out = _repl(vlm, memory, tmp_path / "traces", calibration=never)
    for line in (f"/workflow {flow}", f"/image {path}", question + f" [{', '.join(options)}]"):
        repl.handle(line)
    assert "asks you" in out.getvalue() and repl.waiting is not None, out.getvalue()
    assert repl.prompt.startswith("your answer")
    repl.handle("/why")  # commands still work while it waits
    assert repl.waiting is not None
    repl.handle(options[-1])
    assert f"answer: {options[-1]}" in out.getvalue() and repl.waiting is None, out.getvalue()
    assert repl.prompt == "foveate> "
    repl.close()


def test_piped_stdin_is_read_plainly(tmp_path: Path, scene) -> None:  # type: ignore[no-untyped-def]
    path, _, _ = scene
    env = _env(tmp_path)
    proc = subprocess.run(
        [str(VENV_BIN / "foveate"), "chat", "--workflow", "direct", "--image", str(path)],
        input="/budget abc\n/image nowhere.png\n/memory\n",  # no /quit: end of input leaves too
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "loading model..." in proc.stdout and "image 1:" in proc.stdout
    assert "error: /budget takes a positive whole number" in proc.stdout
    assert "error: image file not found" in proc.stdout and "memory: 0 insights" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_a_bad_workflow_exits_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(VENV_BIN / "foveate"), "chat", "--workflow", str(tmp_path / "nope.yaml")],
        input="",
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.splitlines() == [
        f"error: no workflow '{tmp_path / 'nope.yaml'}': not a built-in (direct, zoom, full) nor a YAML file"
    ]


# ------------------------------------------------------------------ the whole thing, in a terminal
def _env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {
        "FOVEATE_MEMORY_DB": str(tmp_path / "memory.db"),
        "FOVEATE_CACHE": str(tmp_path / "cache"),
        "FOVEATE_CHAT_HISTORY": str(tmp_path / "chat_history"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


@needs_tmux
def test_chat_in_tmux(tmp_path: Path, scene) -> None:  # type: ignore[no-untyped-def]
    """Load a scene, ask, read the answer, /why, /feedback, /quit with exit code 0, in a real terminal."""
    path, options, question = scene
    env = _env(tmp_path)
    exit_file = tmp_path / "exit"
    exports = " ".join(
        f"{k}={v}" for k, v in env.items() if k.startswith(("FOVEATE_", "HF_", "TRANSFORMERS_"))
    )
    command = f"env {exports} {VENV_BIN / 'foveate'} chat; echo EXIT=$? > {exit_file}"

    def wait_for(pattern: str, timeout: float = 120.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = term.screen(history=200)
            if re.search(pattern, text, re.M):
                return text
            time.sleep(0.3)
        raise AssertionError(f"{pattern!r} never appeared; the screen:\n{term.screen(history=200)}")

    started = time.monotonic()
    with terminal(command, width=200, height=50) as term:
        wait_for(r"^foveate>\s*$")
        term.send(f"/image {path}")
        wait_for(r"^image 1: .*scene\.png \(\d+x\d+\)")
        term.send(f"/options {','.join(options)}")
        wait_for(r"^options: ")
        term.send(question)
        text = wait_for(r"^answer: \S+  \(confidence")
        answer = re.search(r"^answer: (\S+)", text, re.M)
        assert answer is not None and answer[1] in options
        term.send("/why")
        text = wait_for(r"^tokens: \d+ visual")
        assert "crops visited" in text and "option probabilities" in text and "recalled insights" in text
        assert re.search(r"^\s+zoom: ", text, re.M)  # the trace names the nodes
        other = next(o for o in options if o != answer[1])
        term.send(f"/feedback wrong {other}")
        wait_for(rf"^thanks: recorded run \w+ as wrong \(right answer: {other}\)")
        term.send("/quit")
        deadline = time.monotonic() + 30
        while not exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert exit_file.read_text().strip() == "EXIT=0"
        history = (tmp_path / "chat_history").read_text()
        assert question in history and "/why" in history  # prompt_toolkit kept the history
        assert "Traceback" not in text
        print(f"tmux chat session: {time.monotonic() - started:.1f} s")
