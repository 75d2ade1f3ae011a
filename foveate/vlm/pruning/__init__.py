"""Training-free visual-token pruning inside a local VLM: FasterVLM ("cls") and FastV ("fastv").

``PruneSpec`` and ``kept_count`` need no torch (the planner costs searches with them);
``VisualTokenPruner`` (``foveate.vlm.pruning.pruner``) runs them and is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from foveate.vlm.pruning.spec import PruneMethod, PruneSpec, kept_count

if TYPE_CHECKING:
    from foveate.vlm.pruning.pruner import Prefill, VisualTokenPruner

__all__ = ["Prefill", "PruneMethod", "PruneSpec", "VisualTokenPruner", "kept_count"]


def __getattr__(name: str) -> Any:
    if name in ("VisualTokenPruner", "Prefill"):
        from foveate.vlm.pruning import pruner

        return getattr(pruner, name)
    raise AttributeError(name)
