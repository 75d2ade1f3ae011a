"""foveate: agentic multimodal question answering over large, detailed images.

The public surface is small: ``foveate.Agent`` (ask, stream, resume, feedback), its ``Answer``, and
``TokenBudget``. They load lazily, so ``import foveate`` stays cheap for the CLI and for tools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Agent", "Answer", "TokenBudget", "__version__"]

if TYPE_CHECKING:
    from foveate.agent import Agent, Answer
    from foveate.vlm.budget import TokenBudget

_LAZY = {"Agent": "foveate.agent", "Answer": "foveate.agent", "TokenBudget": "foveate.vlm.budget"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'foveate' has no attribute {name!r}")
