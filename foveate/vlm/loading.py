"""From a name to a backend: ``load_vlm``, and resolving a model name with clear errors.

A local folder is used as is. Anything else is treated as a Hugging Face hub id, which
works only where the user's machine has the model cached or has a network; with
``HF_HUB_OFFLINE=1`` (tests, CI) a missing model fails fast with a message that says how
to fix it, never with a download attempt.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foveate.errors import ModelLoadError

if TYPE_CHECKING:
    from foveate.vlm.base import VLM
    from foveate.vlm.families import FamilyRegistry

__all__ = ["hub_load_error", "load_vlm", "resolve_model_source"]

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


def load_vlm(
    model: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    *,
    family: str | None = None,
    families: FamilyRegistry | None = None,
    **options: Any,
) -> VLM:
    """The one way a name becomes a backend.

    - ``endpoint`` (an OpenAI-compatible server URL, e.g. vLLM's ``http://host:8000/v1``): an ``OpenAIVLM``;
      ``model`` is then the served model's name (None: the first the server lists) and ``family`` names its
      family, so that visual tokens and zoom prompts fit it.
    - else ``model`` (a local folder or a hub id): a ``TransformersVLM``; its family comes from its config
      (``family`` overrides).
    - neither: the embedded tiny VLM (``foveate.tiny_vlm``), on the CPU unless ``device`` says otherwise
      (it is CPU-sized, and its figures were measured in float32 there).

    ``families``: a registry with your own families (``builtin_families().copy()`` plus yours); ``options``
    go to the backend's constructor (``device=``, ``timeout=``, ...).
    """
    if endpoint:
        from foveate.vlm.openai_vlm import OpenAIVLM

        return OpenAIVLM(
            endpoint,
            model=None if model is None else os.fspath(model),
            family=family,
            families=families,
            **options,
        )
    from foveate.vlm.transformers_vlm import TransformersVLM

    if model is None:
        from foveate.tiny_vlm import default_model_path

        model = default_model_path()
        options.setdefault("device", "cpu")
    return TransformersVLM(model, family=family, families=families, **options)
