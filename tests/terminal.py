"""A real terminal for tests that drive the CLI as a person would: a detached tmux session on a tmux server of
its own.

Why a server of its own: CI once failed ``tmux new-session`` (exit status 1, its stderr not kept) in the test
that followed another tmux test. On the shared default socket every tmux test, and anything else on the
machine, shares one server: killing its last session makes it exit, and whatever else uses that socket meets
it. Here each terminal starts its own server on a socket in a fresh temporary folder (``tmux -S``), and at the
end kills it and removes the folder (tmux leaves its socket file behind); a start that still fails is tried
twice more on a fresh socket (after 2 s, then 4 s), and the failure quotes tmux's own stderr. (A loop of 300
kill-then-start pairs on one socket, under load, never failed here, so the cause is not pinned down: hence
the retry and the quoted stderr rather than a claimed fix.)"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

needs_tmux = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


@dataclass(frozen=True)
class Terminal:
    """One tmux session named ``name`` on the private server listening at the socket path ``socket``."""

    socket: Path
    name: str

    def tmux(self, *args: str) -> str:
        """Run a tmux command on this terminal's server; its stdout, or an error quoting tmux's stderr."""
        done = subprocess.run(["tmux", "-S", str(self.socket), *args], capture_output=True, text=True)
        if done.returncode != 0:
            said = done.stderr.strip() or "(no stderr)"
            raise AssertionError(f"tmux {' '.join(args[:3])} ... exited {done.returncode}: {said}")
        return done.stdout

    def screen(self, history: int = 0) -> str:
        """The pane's text, joined lines, with ``history`` lines of scrollback above it."""
        extra = ["-S", str(-history)] if history else []
        return self.tmux("capture-pane", "-p", "-J", *extra, "-t", self.name)

    def send(self, line: str) -> None:
        """Type ``line`` literally, then Enter."""
        self.tmux("send-keys", "-t", self.name, "-l", line)
        self.tmux("send-keys", "-t", self.name, "Enter")


@contextmanager
def terminal(command: str, width: int = 160, height: int = 40, tries: int = 3) -> Iterator[Terminal]:
    """A detached session running the shell ``command`` on a fresh private tmux server, killed afterwards."""
    failures: list[str] = []
    for attempt in range(tries):
        # in /tmp, not $TMPDIR: a unix socket's path must fit in about 107 bytes, and $TMPDIR can be long
        folder = Path(tempfile.mkdtemp(prefix="foveate-tmux-", dir="/tmp" if Path("/tmp").is_dir() else None))
        term = Terminal(socket=folder / "socket", name=f"foveate-{uuid.uuid4().hex[:8]}")
        try:
            term.tmux("new-session", "-d", "-s", term.name, "-x", str(width), "-y", str(height), command)
            break
        except AssertionError as failed:
            failures.append(str(failed))
            _kill_server(term)
            if attempt + 1 < tries:
                time.sleep(2.0 * (attempt + 1))  # a resource still held by the last server gets time to go
    else:
        raise AssertionError(f"tmux would not start a session in {tries} tries: {failures}")
    try:
        yield term
    finally:
        _kill_server(term)


def _kill_server(term: Terminal) -> None:
    subprocess.run(["tmux", "-S", str(term.socket), "kill-server"], capture_output=True)
    shutil.rmtree(term.socket.parent, ignore_errors=True)
