"""Zoom search with the shipped tiny VLM: a regression guard on 30 scenes of a test seed.

The benchmark page (docs/benchmarks/zoom.md) measures five scene distributions over three evaluation seeds;
this test holds the search to its bars on a seed used by neither the page nor tuning (31), small enough to
run in CI: both searches beat the whole image by 20 points, and ``fast`` spends at most half of ZoomEye's
probes and a third of its forward passes. (The probe bar was 0.4 for the weights before issue 28; with
the weights that see in both worlds ZoomEye stops sooner, 85 probes a question against 93 on the page's
``default`` scenes, while ``fast`` spends about the same, 40 against 38, so the ratio is 0.47 there.
The page's goal is on forward passes.)
"""

from __future__ import annotations

import numpy as np
import pytest

from foveate.synthetic import generate_scene
from foveate.tiny_vlm import TINY_VLM_PATH, tiny_vlm_available
from foveate.vlm import TransformersVLM
from foveate.zoom import ZoomAgent, ZoomConfig, wording_cues

SEED = 31
"""Neither a tuning seed (7, 8) nor an evaluation seed of the page (21, 22, 23)."""
SCENES = 30


@pytest.fixture(scope="module")
def results() -> dict[str, dict[str, list[float]]]:
    assert tiny_vlm_available(), f"the trained tiny VLM is missing from {TINY_VLM_PATH}"
    vlm = TransformersVLM(TINY_VLM_PATH)
    agents = {name: ZoomAgent(vlm, ZoomConfig(strategy=name)) for name in ("direct", "zoomeye", "fast")}
    out: dict[str, dict[str, list[float]]] = {
        name: {"right": [], "probes": [], "passes": []} for name in agents
    }
    for index in range(SCENES):
        image, item = generate_scene(SEED, index)
        cues = wording_cues(item.question)
        for name, agent in agents.items():
            result = agent.run(image, item.question, item.options, cues=cues)
            out[name]["right"].append(float(result.answer == item.answer))
            out[name]["probes"].append(result.probes)
            out[name]["passes"].append(result.forward_passes)
    return out


def _mean(results: dict[str, dict[str, list[float]]], name: str, what: str) -> float:
    return float(np.mean(results[name][what]))


@pytest.mark.parametrize("strategy", ["zoomeye", "fast"])
def test_each_search_beats_the_whole_image_by_20_points(
    results: dict[str, dict[str, list[float]]], strategy: str
) -> None:
    gain = _mean(results, strategy, "right") - _mean(results, "direct", "right")
    assert gain >= 0.20, {k: _mean(results, k, "right") for k in results}


def test_fast_spends_a_fraction_of_zoomeyes_probes_and_passes(
    results: dict[str, dict[str, list[float]]],
) -> None:
    probes = _mean(results, "fast", "probes") / _mean(results, "zoomeye", "probes")
    passes = _mean(results, "fast", "passes") / _mean(results, "zoomeye", "passes")
    assert probes <= 0.5 and passes <= 1 / 3, (probes, passes)
