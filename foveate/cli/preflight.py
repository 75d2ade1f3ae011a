"""What a command can check without its model, checked before the model loads (6-11 s for a local one):
the workflow, the database paths and the calibration, so that a typo is named at once, not after the wait.

Each check is the cheap half of what opening would check later (a folder, a FIFO, a file that is not
SQLite, a workflow that does not parse); opening still checks everything (``quick_check``, migrations).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from foveate.errors import CalibrationStoreError, MemoryDatabaseError, RunError

if TYPE_CHECKING:
    from foveate.settings import FoveateSettings

__all__ = ["check_before_loading"]


def check_before_loading(
    settings: FoveateSettings,
    *,
    workflows: list[str] | None = None,
    memory: bool = True,
    checkpoints: bool = True,
    calibration: bool = True,
) -> None:
    """Refuse, with the error opening would give, the workflow(s), memory, checkpoints and stored
    calibration that ``settings`` name and the command would use (``memory=False`` and so on when it does
    not); ``workflows``: these instead of ``settings.workflow``."""
    from foveate.databases import as_url, check_sqlite_file, sqlite_file
    from foveate.graphs.nodes import builtin_registry
    from foveate.graphs.workflow import resolve_workflow

    registry = builtin_registry()
    for workflow in workflows if workflows is not None else [settings.workflow]:
        resolve_workflow(workflow, registry)  # a GraphSpecError names the file and line
    if memory:
        path = sqlite_file(as_url(settings.memory_db))
        if path is not None:
            check_sqlite_file(path, "memory database", MemoryDatabaseError)
    if checkpoints and "://" not in settings.checkpoints:
        check_sqlite_file(Path(settings.checkpoints).expanduser(), "checkpoint database", RunError)
    if calibration and settings.alpha is not None:  # only --alpha reads the stored calibrations
        path = sqlite_file(as_url(settings.calibration_db))
        if path is not None:
            check_sqlite_file(path, "calibration database", CalibrationStoreError)
            if not path.is_file():
                raise CalibrationStoreError(
                    f"--alpha {settings.alpha} reads the stored calibrations, but there is no calibration "
                    f"database at {path}: make one with `foveate calibrate`"
                )
