"""Long work shows its progress live: the probe count of a zoom search changes on screen while the search
runs, in ``foveate run`` and in ``foveate chat``, in a real terminal (tmux), as a person would see it.

Before: ``foveate run`` printed a line only when a node finished, so a search of 146 probes was a silent
minute, and chat's line stayed at "starting 0 probes, 0 tokens" until the search ended."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from foveate.synthetic import generate_scene

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
VENV_BIN = Path(sys.executable).parent


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


@contextmanager
def _terminal(command: str, tmp_path: Path) -> Iterator[str]:
    """A detached tmux session running ``command`` with a test home; yields its name."""
    env = {
        "HOME": str(tmp_path),
        "FOVEATE_CONFIG": str(tmp_path / "none.toml"),
        "FOVEATE_MEMORY_DB": str(tmp_path / "memory.db"),
        "FOVEATE_CACHE": str(tmp_path / "cache"),
        "FOVEATE_CHAT_HISTORY": str(tmp_path / "chat_history"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PATH": os.environ.get("PATH", ""),
    }
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    name = f"foveate-live-{uuid.uuid4().hex[:8]}"
    _tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "40", f"env {exports} {command}; sleep 600")
    try:
        yield name
    finally:
        subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)


def _screen(name: str) -> str:
    return _tmux("capture-pane", "-p", "-J", "-t", name)


def _counts_until(name: str, counting: str, done: str, timeout: float = 240.0) -> tuple[list[int], str]:
    """Every probe count ``counting`` showed, polled until ``done`` appears; and the last screen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = _screen(name)
        for found in re.findall(counting, text):
            if not seen or seen[-1] != int(found):
                seen.append(int(found))
        if re.search(done, text, re.M):
            return seen, text
        time.sleep(0.05)
    raise AssertionError(f"{done!r} never appeared; the screen:\n{_screen(name)}")


# the ZoomEye search probes node by node (the fast one spends most of its probes in one batched call, too
# quick to catch between screen reads): its count visibly climbs call by call
SLOW_SEARCH = """\
name: slow-search
start: zoom
nodes:
  zoom: {uses: zoom, params: {strategy: zoomeye}}
  reason: {uses: reason, params: {use_insights: false}}
edges:
  - {from: zoom, to: reason}
  - {from: reason, to: END}
"""


@pytest.fixture(scope="module")
def big_scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], str, Path]:
    """A 3000 px scene, and a workflow whose search takes many calls."""
    folder = tmp_path_factory.mktemp("scene")
    image, item = generate_scene(4, 0, size_range=(3000, 3200))
    image.save(folder / "scene.png")
    (folder / "slow.yaml").write_text(SLOW_SEARCH)
    return folder / "scene.png", list(item.options), item.question, folder / "slow.yaml"


def test_foveate_run_counts_probes_while_the_search_runs(big_scene, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, options, question, flow = big_scene
    words = [str(VENV_BIN / "foveate"), "run", str(path), question, "--options", ",".join(options)]
    command = shlex.join(
        [*words, "--workflow", str(flow), "--no-memory", "--checkpoints", str(tmp_path / "r.db")]
    )
    with _terminal(command, tmp_path) as name:
        seen, text = _counts_until(name, r"zoom: (\d+) probes, \d+ tokens so far", r"^answer: ")
    print(f"probe counts seen: {seen}")
    final = re.search(r"probes: (\d+)", text)
    assert final is not None, text
    # the count moved while the search ran (several values, rising), and ended where the run's total did
    assert len(seen) >= 2 and seen == sorted(seen) and seen[0] > 0, seen
    assert seen[-1] <= int(final[1]), (seen, text)


def test_chat_counts_probes_while_the_search_runs(big_scene, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, options, question, flow = big_scene
    command = shlex.join([str(VENV_BIN / "foveate"), "chat", "--workflow", str(flow), "--image", str(path)])
    with _terminal(command, tmp_path) as name:
        deadline = time.monotonic() + 120
        while not re.search(r"^foveate>\s*$", _screen(name), re.M):
            assert time.monotonic() < deadline, _screen(name)
            time.sleep(0.2)
        _tmux("send-keys", "-t", name, "-l", f"{question} [{', '.join(options)}]")
        _tmux("send-keys", "-t", name, "Enter")
        seen, _ = _counts_until(name, r"zoom…\s+(\d+) probes", r"^answer: \S+")
    print(f"probe counts seen: {seen}")
    assert len(seen) >= 2 and seen == sorted(seen) and seen[0] > 0, seen
