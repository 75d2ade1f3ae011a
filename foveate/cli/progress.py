"""The progress bar long commands share (``foveate eval``, ``foveate batch``): done / total, rate, ETA."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from foveate.cli.common import err_console

__all__ = ["question_progress"]


class _Rate(ProgressColumn):
    """Questions per second over the recent past (rich's own speed estimate)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} q/s" if speed else "- q/s", style="progress.data.speed")


def question_progress() -> Progress:
    """A bar on stderr (stdout stays for results), with the rate in questions per second and the ETA."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )
