"""The benchmarks' probe-replay cache: same answers and counts as the model, refuses other weights or code.

``benchmarks.replay`` lets a zoom-search variant be scored from answers already computed; a search scored
through it must see exactly what it would see from the model, and a cache made by other weights or other
answering code must never be read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.replay import ReplayStore, ReplayVLM
from foveate.synthetic import generate_scene
from foveate.testing.scripted import ScriptedVLM
from foveate.vlm.profile import VLMProfile
from foveate.zoom import ZoomAgent, ZoomConfig, wording_cues


def _model() -> ScriptedVLM:
    """A model whose answers depend on the pixels and the prompt (so a wrong cache key would show)."""

    def yes(view, text: str) -> float:  # type: ignore[no-untyped-def]
        r, g, b = view.resize((1, 1)).getpixel((0, 0))[:3]
        return ((r * 7 + g * 3 + b + len(text) * 11 + view.width) % 97) / 97

    return ScriptedVLM(yes=yes, profile=VLMProfile.unknown(family="oracle", max_batch_size=16))


@pytest.mark.parametrize("strategy", ["zoomeye", "fast"])
def test_a_replayed_search_is_the_search(tmp_path: Path, strategy: str) -> None:
    config = ZoomConfig(strategy=strategy, native_side=128, max_probes=200)
    direct = ZoomAgent(_model(), config)
    store = ReplayStore(tmp_path / "replay.sqlite", "weights-a", "code-a")
    inner = _model()
    replayed = ZoomAgent(ReplayVLM(inner, store), config)
    for index in range(3):
        image, item = generate_scene(3, index)
        cues = wording_cues(item.question)
        want = direct.run(image, item.question, item.options, cues=cues)
        first = replayed.run(image, item.question, item.options, cues=cues)
        calls = inner.calls["yes"]
        again = replayed.run(image, item.question, item.options, cues=cues)
        assert inner.calls["yes"] == calls  # the second run asked the model nothing
        for got in (first, again):
            assert got.answer == want.answer and got.crops == want.crops
            assert [v.box for v in got.visits] == [v.box for v in want.visits]
            assert got.probes == want.probes and got.forward_passes == want.forward_passes
    assert store.hits > 0 and store.misses > 0
    store.close()


def test_a_cache_made_by_other_weights_or_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "replay.sqlite"
    ReplayStore(path, "weights-a", "code-a").close()
    ReplayStore(path, "weights-a", "code-a").close()  # the same: opens
    with pytest.raises(SystemExit, match="other weights"):
        ReplayStore(path, "weights-b", "code-a")
    with pytest.raises(SystemExit, match="other answering code"):
        ReplayStore(path, "weights-a", "code-b")
