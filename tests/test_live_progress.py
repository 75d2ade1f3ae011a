"""Long work shows its progress live: the probe count of a zoom search changes on screen while the search
runs, in ``foveate run`` and in ``foveate chat``, in a real terminal (tmux), as a person would see it.

Before: ``foveate run`` printed a line only when a node finished, so a search of 146 probes was a silent
minute, and chat's line stayed at "starting 0 probes, 0 tokens" until the search ended."""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from terminal import Terminal, needs_tmux, terminal

from foveate.synthetic import generate_scene

pytestmark = needs_tmux
VENV_BIN = Path(sys.executable).parent


@contextmanager
def _terminal(command: str, tmp_path: Path) -> Iterator[Terminal]:
    """A terminal running ``command`` with a test home."""
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
    with terminal(f"env {exports} {command}; sleep 600") as term:
        yield term


def _counts_until(term: Terminal, counting: str, done: str, timeout: float = 240.0) -> tuple[list[int], str]:
    """Every probe count ``counting`` showed, polled until ``done`` appears; and the last screen."""
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = term.screen()
        for found in re.findall(counting, text):
            if not seen or seen[-1] != int(found):
                seen.append(int(found))
        if re.search(done, text, re.M):
            return seen, text
        time.sleep(0.05)
    raise AssertionError(f"{done!r} never appeared; the screen:\n{term.screen()}")


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
    with _terminal(command, tmp_path) as term:
        seen, text = _counts_until(term, r"zoom: (\d+) probes, \d+ tokens so far", r"^answer: ")
    print(f"probe counts seen: {seen}")
    final = re.search(r"probes: (\d+)", text)
    assert final is not None, text
    # the count moved while the search ran (several values, rising), and ended where the run's total did
    assert len(seen) >= 2 and seen == sorted(seen) and seen[0] > 0, seen
    assert seen[-1] <= int(final[1]), (seen, text)


def test_chat_counts_probes_while_the_search_runs(big_scene, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path, options, question, flow = big_scene
    command = shlex.join([str(VENV_BIN / "foveate"), "chat", "--workflow", str(flow), "--image", str(path)])
    with _terminal(command, tmp_path) as term:
        deadline = time.monotonic() + 120
        while not re.search(r"^foveate>\s*$", term.screen(), re.M):
            assert time.monotonic() < deadline, term.screen()
            time.sleep(0.2)
        term.send(f"{question} [{', '.join(options)}]")
        seen, _ = _counts_until(term, r"zoom…\s+(\d+) probes", r"^answer: \S+")
    print(f"probe counts seen: {seen}")
    assert len(seen) >= 2 and seen == sorted(seen) and seen[0] > 0, seen
