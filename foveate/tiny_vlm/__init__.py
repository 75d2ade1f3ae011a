"""The embedded tiny VLM: foveate's default model, its architecture, its task wording and its trainer.

``TINY_VLM_PATH`` is the embedded default model: a LLaVA-architecture VLM trained by
``python -m foveate.tiny_vlm.train`` on synthetic scenes (``foveate.synthetic``), shipped in the package,
loaded like any model folder (``foveate.vlm.load_vlm()`` with no arguments). Its folder names its family
in ``config.json`` (``"foveate_family": "foveate-tiny"``), whose profile is
``foveate.vlm.families.foveate_tiny``.

Modules: ``architecture`` (the tiny LLaVA and its tokenizer, built from a config), ``tasks`` (what it is
asked, and the training views), ``train`` (the recipe that made the shipped weights).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

__all__ = ["FAMILY_NAME", "TINY_VLM_PATH", "default_model_path", "model_label", "tiny_vlm_available"]

log = logging.getLogger(__name__)

TINY_VLM_PATH = Path(__file__).parent / "weights"

FAMILY_NAME = "foveate-tiny"
"""The family the shipped folder declares in its ``config.json``."""


def tiny_vlm_available() -> bool:
    """Whether the trained weights ship with this checkout."""
    return (TINY_VLM_PATH / "config.json").is_file() and (TINY_VLM_PATH / "model.safetensors").is_file()


def default_model_path() -> Path:
    """The embedded tiny VLM; without its weights, a tiny random-weight LLaVA built from a config (once, in
    ``$FOVEATE_CACHE``, else the temporary folder), with a warning: its answers are noise."""
    if tiny_vlm_available():
        return TINY_VLM_PATH
    folder = (
        Path(os.environ.get("FOVEATE_CACHE", Path(tempfile.gettempdir()) / "foveate")) / "tiny-random-llava"
    )
    log.warning("the embedded tiny VLM's weights are missing; using a random-weight tiny LLaVA at %s", folder)
    if not (folder / "config.json").exists():
        from foveate.tiny_vlm.architecture import build_tiny_llava

        build_tiny_llava(folder, seed=0)
    return folder


def model_label(model: str | os.PathLike[str]) -> str:
    """How pages name a model folder: ``tiny_vlm`` for the embedded one, else the folder's name."""
    path = Path(model)
    return "tiny_vlm" if path.resolve() == TINY_VLM_PATH.resolve() else path.name
