"""An append-only JSON Lines file of finished work that a killed run resumes from.

Each finished question is one line, written whole, flushed and synced to disk before the next is taken, so
a run killed at any moment loses at most the questions in flight: on resume the keys already in the file
are skipped. A kill in the middle of a write leaves a last line without its newline; resuming cuts that
line off (its question is then answered again, and written once). Any other unreadable line is an error
naming the line: the file is never rewritten past it. A write that fails (a full disk) is cut back to the
last whole line before the error is raised, so the file stays resumable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from foveate.errors import ManifestError, ResultsWriteError
from foveate.files import output_file

__all__ = ["ResultsFile"]


class ResultsFile:
    """``path``, opened for appending; ``key(line)`` names the work a line finished."""

    def __init__(self, path: Path, key: Callable[[dict[str, Any]], str]) -> None:
        self.path = path
        self.key = key
        self._lock = threading.Lock()
        self._fd: int | None = None

    def open(self, *, resume: bool) -> list[dict[str, Any]]:
        """Start the file (refusing one that exists unless ``resume``) and return the lines it holds."""
        lines: list[dict[str, Any]] = []
        self.path = output_file(self.path, "results file", ManifestError)
        if self.path.exists():
            if not resume:
                raise ManifestError(
                    f"{self.path} exists: add --resume to continue it, or write to another --out"
                )
            lines = self._read_and_repair()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return lines

    def done(self, lines: list[dict[str, Any]]) -> set[str]:
        return {self.key(line) for line in lines}

    def write(self, line: dict[str, Any]) -> None:
        """Append one line and make it durable before returning (threads may call this at once)."""
        data = memoryview((json.dumps(line, ensure_ascii=False) + "\n").encode("utf-8"))
        with self._lock:
            if self._fd is None:
                raise ManifestError(f"{self.path} is not open")
            fcntl.flock(self._fd, fcntl.LOCK_EX)  # another process appending: its lines are not cut back
            try:
                whole = os.lseek(self._fd, 0, os.SEEK_END)
                while data:
                    data = data[os.write(self._fd, data) :]
                os.fsync(self._fd)
            except OSError as exc:
                with contextlib.suppress(OSError):  # shrinking needs no free space
                    os.ftruncate(self._fd, whole)
                raise ResultsWriteError(
                    f"cannot write {self.path}: {exc.strerror or exc}; every line before is whole, and "
                    "--resume goes on from them once the cause is gone"
                ) from exc
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> ResultsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_and_repair(self) -> list[dict[str, Any]]:
        raw = self.path.read_bytes()
        if raw and not raw.endswith(b"\n"):  # a write cut short by a kill: drop the partial line
            cut = raw.rfind(b"\n") + 1
            with self.path.open("r+b") as handle:
                handle.truncate(cut)
            raw = raw[:cut]
        out = []
        for lineno, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                self.key(data)
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ManifestError(
                    f"{self.path}:{lineno}: not a results line ({exc}); not resuming"
                ) from None
            out.append(data)
        return out
