"""What a workflow's nodes run against besides the state: the models, memory, calibration and registries.

LangGraph checkpoints the state after every node, so the state holds only JSON; everything that is not
data (a loaded model, an open database, a calibration) lives in ``Services``, built once per workflow and
handed to every node factory. Never checkpointed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from foveate.conformal.gate import Calibration
from foveate.graphs.state import QAState
from foveate.imaging.images import load_image
from foveate.memory import InsightMemory
from foveate.vlm.base import VLM
from foveate.zoom import StrategyRegistry, ZoomAgent, ZoomConfig, builtin_strategies

__all__ = ["Services"]


@dataclass
class Services:
    """What nodes need besides the state: models, memory, calibration. Never checkpointed.

    ``reasoner``: a text-only model for ``reason`` with ``model: text`` (None: the VLM reasons too).
    ``cue_source``: how the objects to look for are listed, by ``perceive``, or by ``zoom`` when the state
    has none (``None``: the model lists them when it can write, else they are read off the question's
    wording). ``strategies``: the zoom strategies
    ``zoom`` nodes may name (the built-in ones, or a copy with yours).
    """

    vlm: VLM
    reasoner: VLM | None = None
    memory: InsightMemory | None = None
    calibration: Calibration | None = None
    cue_source: Callable[[str], list[str]] | None = None
    strategies: StrategyRegistry = field(default_factory=builtin_strategies)
    image_cache_size: int = 8
    _images: OrderedDict[str, Image.Image] = field(default_factory=OrderedDict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _agents: dict[str, ZoomAgent] = field(default_factory=dict, repr=False)

    def image(self, state: QAState | dict[str, Any]) -> Image.Image:
        """The question's image, decoded once per run (a 2000 px PNG takes ~50 ms to decode)."""
        path = state["image_path"]
        with self._lock:
            if path in self._images:
                self._images.move_to_end(path)
                return self._images[path]
        image = load_image(path)
        self.remember_image(path, image)
        return image

    def remember_image(self, path: str, image: Image.Image) -> None:
        """Prime the cache with an image already decoded (by ``Workflow.start_state``)."""
        with self._lock:
            self._images[path] = image
            while len(self._images) > self.image_cache_size:
                self._images.popitem(last=False)

    def zoom_agent(self, config: ZoomConfig) -> ZoomAgent:
        if config.budget is not None:  # a per-question budget: cheap to build, not worth keeping
            return ZoomAgent(self.vlm, config, strategies=self.strategies)
        key = config.model_dump_json()
        with self._lock:
            if key not in self._agents:
                self._agents[key] = ZoomAgent(self.vlm, config, strategies=self.strategies)
            return self._agents[key]
