"""Zoom strategies, one module each, and the registry that names them.

Built in: ``direct`` (no search), ``zoomeye`` (the faithful baseline), ``fast`` (ours) and
``attention_crop`` (ViCrop). A strategy of your own is a class satisfying ``foveate.zoom.ZoomStrategy``
(``TreeSearch`` gives you ZoomEye's loop; implement ``expand``), registered on a copy of the built-in
registry and handed to the agent (``examples/custom_strategy.py``); there is no global registry::

    strategies = builtin_strategies()
    strategies.register(MyStrategy())
    ZoomAgent(vlm, ZoomConfig(strategy="mine"), strategies=strategies)
"""

from __future__ import annotations

from collections.abc import Iterator

from foveate.errors import UnsupportedRequestError
from foveate.zoom.search import ZoomStrategy
from foveate.zoom.strategies.attention_crop import AttentionCrop
from foveate.zoom.strategies.direct import Direct
from foveate.zoom.strategies.fast import Fast
from foveate.zoom.strategies.zoomeye import ZoomEye

__all__ = ["AttentionCrop", "Direct", "Fast", "StrategyRegistry", "ZoomEye", "builtin_strategies"]


class StrategyRegistry:
    """Zoom strategies by name."""

    def __init__(self, strategies: list[ZoomStrategy] | None = None) -> None:
        self._by_name: dict[str, ZoomStrategy] = {}
        for strategy in strategies or []:
            self.register(strategy)

    def register(self, strategy: ZoomStrategy) -> ZoomStrategy:
        """Add ``strategy`` under its ``name`` (replacing one of the same name)."""
        if not isinstance(strategy, ZoomStrategy) or not strategy.name:
            raise TypeError(
                f"{strategy!r} is not a zoom strategy: it needs a name, lists_cues, search() and "
                "worst_case_probes() (see foveate.zoom.ZoomStrategy)"
            )
        self._by_name[strategy.name] = strategy
        return strategy

    def copy(self) -> StrategyRegistry:
        return StrategyRegistry(list(self._by_name.values()))

    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[ZoomStrategy]:
        return iter(self._by_name.values())

    def get(self, name: str) -> ZoomStrategy:
        """The strategy called ``name``; ``UnsupportedRequestError`` naming the known ones otherwise."""
        try:
            return self._by_name[name]
        except KeyError:
            raise UnsupportedRequestError(
                f"unknown zoom strategy {name!r}; known: {', '.join(self.names())}"
            ) from None


def builtin_strategies() -> StrategyRegistry:
    """A fresh registry of the built-in strategies: yours to extend."""
    return StrategyRegistry([Direct(), ZoomEye(), Fast(), AttentionCrop()])
