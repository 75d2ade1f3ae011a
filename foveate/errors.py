"""Errors that foveate raises on purpose.

Every error names the thing that was wrong (the file, the URL, the model folder, the
budget) so that a user can fix it without reading a traceback. They all derive from
``FoveateError`` so that the CLI can print them as one line.
"""

from __future__ import annotations

from typing import Any


def validation_problems(exc: Any, whole: str = "value") -> str:
    """A pydantic ``ValidationError`` in one line: ``field.path: what``, ``; ``-separated (``whole`` names an
    error about the value as a whole), without pydantic's ``Value error, `` prefix on our own checks."""
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or whole}: {str(e['msg']).removeprefix('Value error, ')}"
        for e in exc.errors()
    )


class FoveateError(Exception):
    """Base class of the errors foveate raises deliberately."""


class ImageLoadError(FoveateError):
    """An image could not be read: missing file, corrupt data, unsupported input.

    Deliberately not a ``ValueError``: pydantic would wrap it in a ``ValidationError`` and
    bury the file name under its own formatting.
    """


class ImageTooLargeError(ImageLoadError):
    """An image has more pixels than the configured limit (a decompression bomb guard)."""


class ModelLoadError(FoveateError, OSError):
    """A model could not be loaded: unknown folder, not a model folder, not cached offline."""


class BackendError(FoveateError, RuntimeError):
    """A model server could not be reached or answered with an error."""


class LogprobsUnavailableError(BackendError):
    """A server did not return the token log-probabilities that scoring needs."""


class UnsupportedRequestError(FoveateError, ValueError):
    """A request asks for something this backend or model cannot do."""


class BudgetExceeded(FoveateError):
    """A call would spend more tokens than its budget allows; raised before any model work.

    Attributes say by how much, so that callers (zoom search, the planner) can react.
    """

    def __init__(self, message: str, *, needed: int = 0, remaining: int = 0) -> None:
        super().__init__(message)
        self.needed = needed
        self.remaining = remaining


class ContextLengthError(FoveateError, ValueError):
    """A prompt is longer than the model's context window; raised before any forward pass (a local model)
    or from the server's refusal. The message names the model, both lengths and where the window comes
    from. Not a ``BudgetExceeded``: no smaller spend fixes it, so no node degrades around it."""


class VisualTokenCapError(BudgetExceeded, ValueError):
    """No resize of an image can bring it under the per-image visual-token cap."""


class ConformalError(FoveateError, ValueError):
    """Bad input to conformal calibration or prediction, named in the message.

    Wrong shapes, probabilities that do not sum to one, an alpha outside (0, 1), an empty
    calibration set. A ``ValueError`` too, so numpy-style callers can catch it as such.
    """


class InsightMemoryError(FoveateError):
    """The insight memory could not do what was asked; the message names the database or index file."""


class MemoryDatabaseError(InsightMemoryError, OSError):
    """A memory database could not be opened: not a database, not foveate's, or from a newer foveate.

    The file is never overwritten or "repaired" when this is raised.
    """


class EmbedderMismatchError(InsightMemoryError, ValueError):
    """Stored insights were embedded by another model (or dimension) than the one in use now."""


class GraphSpecError(FoveateError, ValueError):
    """A workflow definition is wrong; the message starts with ``FILE:LINE:`` of the offending YAML."""


class ManifestError(FoveateError, ValueError):
    """A benchmark manifest is missing or one of its lines is not a valid scene item."""


class ResultsWriteError(FoveateError, OSError):
    """A results file (``foveate batch`` / ``eval``) could not be written (a full disk); the message names
    it. The file was cut back to its last whole line, so ``--resume`` goes on from it."""


class DatasetFormatError(ManifestError):
    """A benchmark folder or file is not in its format; the message names the first thing that differs."""


class CalibrationStoreError(FoveateError, OSError):
    """A calibration database could not be opened or written; the message names it."""


class CalibrationMismatchError(FoveateError):
    """A calibration was made for another model, workflow, strategy or budget; the message names each
    difference and where the calibration came from."""


class RunError(FoveateError):
    """A run cannot be started or resumed (unknown run id, nothing to resume)."""


class SettingsError(FoveateError, ValueError):
    """A setting in the environment or the config file is invalid."""


class CheckpointWriteError(RunError, OSError):
    """A run's checkpoint (or its cached image) could not be written: a full disk, a locked database. An
    ``OSError`` too, so that batch runs leave the question to ``--resume`` rather than record it."""


class MemoryWriteError(InsightMemoryError, OSError):
    """A change to the insight memory could not be stored (a full disk); what was stored before is intact.
    An ``OSError`` too, so that batch runs leave the question to ``--resume``."""


class ChatError(FoveateError):
    """A line the REPL cannot act on (bad argument, nothing asked yet); shown as one line."""


class IndexFileError(InsightMemoryError):
    """An index file or its sidecar is missing, unreadable or inconsistent (internal: means rebuild)."""
