"""Zoom search: find the small things a question is about in a large image, and answer from a crop.

- ``ZoomAgent`` (``agent``): plan, list cues, search, answer; ``ZoomConfig`` / ``ZoomResult`` / ``Visit``
  (``config``).
- Strategies (``strategies``, one module each): ``direct``, ``zoomeye``, ``fast``, ``attention_crop``;
  ``ZoomStrategy`` is the contract, ``TreeSearch`` the best-first loop ZoomEye-like strategies share
  (``search``), ``StrategyRegistry`` / ``builtin_strategies`` name them.
- What strategies search with: ``SearchContext`` (``context``), the budget ``Meter`` (``meter``), the image
  tree (``tree``), cues (``cues``), the answering call (``answering``), the budget ``planner``.
"""

from foveate.zoom.agent import ZoomAgent
from foveate.zoom.config import Visit, ZoomConfig, ZoomResult
from foveate.zoom.context import Found, SearchContext
from foveate.zoom.cues import parse_cues, wording_cues
from foveate.zoom.meter import Meter, SearchStopped
from foveate.zoom.search import Expansion, TreeSearch, ZoomStrategy, depth_weight, priority
from foveate.zoom.strategies import StrategyRegistry, builtin_strategies
from foveate.zoom.tree import TreeNode

__all__ = [
    "Expansion",
    "Found",
    "Meter",
    "SearchContext",
    "SearchStopped",
    "StrategyRegistry",
    "TreeNode",
    "TreeSearch",
    "Visit",
    "ZoomAgent",
    "ZoomConfig",
    "ZoomResult",
    "ZoomStrategy",
    "builtin_strategies",
    "depth_weight",
    "parse_cues",
    "priority",
    "wording_cues",
]
