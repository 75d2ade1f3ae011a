"""Resolving a model name to something ``from_pretrained`` can load, with clear errors.

A local folder is used as is. Anything else is treated as a Hugging Face hub id, which
works only where the user's machine has the model cached or has a network; with
``HF_HUB_OFFLINE=1`` (tests, CI) a missing model fails fast with a message that says how
to fix it, never with a download attempt.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from foveate.errors import ModelLoadError

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def resolve_model_source(model: str | os.PathLike[str]) -> str:
    """Return a local folder path or a hub id; raise ``ModelLoadError`` for an unknown folder."""
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"model path is a file, not a model folder: {path}")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"not a model folder (no config.json): {path}")
        return str(path.resolve())
    looks_like_path = (
        text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep in text.replace("/", "")
    )
    if looks_like_path or not _HUB_ID.match(text):
        raise ModelLoadError(f"no model folder at {path}")
    return text


def hub_load_error(model_id: str, exc: BaseException) -> ModelLoadError:
    """A one-line explanation of why a hub id could not be loaded."""
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")
    hint = (
        "HF_HUB_OFFLINE is set and it is not in the local cache; download it first "
        f"(`hf download {model_id}`) or pass a model folder"
        if offline
        else "check the name, your network, or pass a local model folder"
    )
    return ModelLoadError(
        f"cannot load model {model_id!r}: there is no local folder by that name and it is not a usable "
        f"hub id here; {hint} ({type(exc).__name__}: {exc})"
    )
