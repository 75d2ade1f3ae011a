"""Faults from outside: image paths that are not images (FIFOs, devices, symlink loops, a 20 GB file), a disk
that fills up under foveate's databases and results, and a model server that dies mid-answer. Each gives
one clear error naming the file or server; nothing committed is lost, and the work goes on once the fault
is gone (issue 25)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import tracemalloc
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from foveate.cli.main import app
from foveate.errors import BackendError, ImageLoadError, InsightMemoryError
from foveate.imaging.images import load_image
from foveate.memory import HashingEmbedder, InsightMemory
from foveate.synthetic.formats import write_jsonl
from foveate.vlm import OpenAIVLM, VLMRequest

runner = CliRunner()
PICTURE = Image.fromarray(np.full((48, 64, 3), 200, dtype=np.uint8))


# ---------------------------------------------------------------------------- image paths
def test_paths_that_are_not_images_are_named_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)  # opening it would block until a writer comes: never opened
    (tmp_path / "loop1.png").symlink_to(tmp_path / "loop2.png")
    (tmp_path / "loop2.png").symlink_to(tmp_path / "loop1.png")
    (tmp_path / "gone.png").symlink_to(tmp_path / "nothing.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")  # endless: never read
    (tmp_path / "empty.png").write_bytes(b"")
    for name, said in [
        ("fifo.png", "not a regular file"),
        ("loop1.png", "symlink loop"),
        ("gone.png", "symlink to nothing"),
        ("zero.png", "not a regular file"),
        ("empty.png", r"empty \(0 bytes\)"),
        ("missing.png", "image file not found"),
        (".", "is a folder"),
    ]:
        with pytest.raises(ImageLoadError, match=said) as caught:
            load_image(tmp_path / name)
        assert str(tmp_path / name) in str(caught.value) or name == "."


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    """A small PNG followed by 20 GB of (sparse) nothing decodes at the cost of the small PNG (before, the
    whole file was read into memory first)."""
    path = tmp_path / "huge.png"
    PICTURE.save(path)
    with path.open("r+b") as handle:
        handle.truncate(20 * 1024**3)
    tracemalloc.start()
    try:
        image = load_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.size == PICTURE.size
    assert peak < 50 * 1024**2


# ---------------------------------------------------------------------------- a disk that fills up
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB filesystem of its own (tmpfs), so that it fills up without touching the machine's disk.
    Mounting needs root with the right to mount; elsewhere the test is skipped."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, check=False
    )
    if mounted.returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root with the right to mount)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)


def _fill(disk: Path, leave: int) -> Path:
    """Fill the disk up to ``leave`` bytes free; the filler file's path (delete it to make room)."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def test_a_full_disk_under_the_memory_loses_nothing_stored(small_disk: Path) -> None:
    db = small_disk / "memory.db"
    stored: list[str] = []
    memory = InsightMemory(db, embedder=HashingEmbedder(), merge_threshold=None, save_every=5)
    filler = _fill(small_disk, leave=96 * 1024)
    with pytest.raises(InsightMemoryError, match=rf"cannot write memory database {db}: .*full.*intact"):
        for i in range(10_000):
            text = f"tip {i}: " + "look at the corners of the image first " * 7 + "and last"
            memory.add(text)
            stored.append(text)
    memory.close()  # the index file cannot be written either: a warning, not an error (it is a cache)
    assert stored, "the disk filled before anything was stored: leave more room"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    filler.unlink()
    with InsightMemory(db, embedder=HashingEmbedder()) as reopened:
        assert [i.text for i in reopened.insights()] == stored
        reopened.add("after the disk was freed")
        assert len(reopened.search("corners of the image", k=3)) == 3


def test_a_full_disk_under_the_checkpoints_stops_the_run_and_resume_goes_on(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    picture = tmp_path / "p.png"
    PICTURE.save(picture)
    runs = small_disk / "runs.db"
    args = ["run", str(picture), "What colour is the picture?", "--no-memory", "--checkpoints", str(runs)]
    filler = _fill(small_disk, leave=120 * 1024)  # a run's checkpoints take about 200 KB of WAL
    stopped = runner.invoke(app, args)
    assert stopped.exit_code == 2, stopped.output
    line = stopped.output.strip().splitlines()[-1]
    assert f"cannot write checkpoint database {runs}" in line and "--resume" in line, stopped.output
    assert "Traceback" not in stopped.output
    run_id = line.split("--resume ")[1].split("`")[0]
    filler.unlink()
    resumed = runner.invoke(app, ["run", "--resume", run_id, "--no-memory", "--checkpoints", str(runs)])
    assert resumed.exit_code == 0, resumed.output
    assert f"run {run_id}" in resumed.output
    with sqlite3.connect(runs) as conn:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    conn.close()


def test_a_full_disk_under_batch_results_keeps_every_line_written(
    small_disk: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FOVEATE_CONFIG", str(tmp_path / "none.toml"))
    questions = write_jsonl(tmp_path / "q" / "questions.jsonl", 24, seed=8, size_range=(256, 320))
    out = small_disk / "answers.jsonl"
    args = ["batch", str(questions), "--out", str(out), "--workflow", "direct", "--concurrency", "1"]
    filler = _fill(small_disk, leave=4 * 1024)  # one page: room for some of the lines, not all
    stopped = runner.invoke(app, args)
    assert stopped.exit_code == 2, stopped.output
    assert f"cannot write {out}" in stopped.output and "Traceback" not in stopped.output
    kept = [json.loads(line)["id"] for line in out.read_text().splitlines()]  # every line whole
    assert 0 < len(kept) < 24
    filler.unlink()
    resumed = runner.invoke(app, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"scene-8-{i:05d}" for i in range(24))


# ---------------------------------------------------------------------------- a server that dies mid-answer
class _DyingServer(ThreadingHTTPServer):
    """Answers its first ``good`` requests in the OpenAI format; then sends headers and half a body, and
    closes the connection (a server killed while answering)."""

    def __init__(self, good: int) -> None:
        super().__init__(("127.0.0.1", 0), _DyingHandler)
        self.good = good
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _DyingHandler(BaseHTTPRequestHandler):
    server: _DyingServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests += 1
        reply: dict[str, Any] = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": body["model"],
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "grey"}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 30, "completion_tokens": 1, "total_tokens": 31},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.server.requests <= self.server.good:
            self.wfile.write(data)
            return
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(2)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_server_dying_mid_answer_is_named() -> None:
    server = _DyingServer(good=1)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        vlm = OpenAIVLM(server.url, "m", max_retries=1, timeout=5)
        assert vlm.generate(VLMRequest.from_prompt("What colour?")).text == "grey"
        with pytest.raises(BackendError, match=server.url):
            vlm.generate(VLMRequest.from_prompt("What colour?"))
        assert server.requests == 3  # the first, then the cut one and its one retry
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
