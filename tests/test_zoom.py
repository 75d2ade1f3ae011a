"""Zoom search: tree maths, the priority rule, the stop rule, budgets and the trace picture.

The search logic is tested against a *seeing oracle*: a ``ScriptedVLM`` (``foveate.testing``) whose
script answers the probes from the pixels (targets are the only saturated things in a scene), with the
size rule the tiny VLM was trained on. It plays the model's part so that what is asserted is the agent's
behaviour in a known world; the real tiny VLM is exercised at the end.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from foveate.imaging.boxes import best_window, box_area, expand_box, grid_cells, map_mass
from foveate.synthetic import COLORS, generate_scene
from foveate.testing.scripted import ScriptedVLM
from foveate.tiny_vlm.views import VISIBLE_PIXELS
from foveate.vlm.budget import TokenBudget
from foveate.vlm.families.foveate_tiny import FAMILY as TINY_FAMILY
from foveate.vlm.profile import VLMProfile
from foveate.vlm.prompts import ZoomPrompts
from foveate.zoom import Visit, ZoomAgent, ZoomConfig, depth_weight, parse_cues, priority, wording_cues
from foveate.zoom.tree import TreeNode, children, tree_depth

PROMPTS = TINY_FAMILY.zoom
NATIVE = 128


# ---------------------------------------------------------------------------------------------- tree
@given(st.integers(1, 5000), st.integers(1, 5000))
def test_children_tile_the_parent_exactly(width: int, height: int) -> None:
    box = (3, 7, 3 + width, 7 + height)
    kids = children(box)
    if not kids:
        assert min(width, height) < 4
        return
    assert len(kids) == 4
    assert sum(box_area(k) for k in kids) == box_area(box)
    for k in kids:
        assert box[0] <= k[0] < k[2] <= box[2] and box[1] <= k[1] < k[3] <= box[3]
    for i, a in enumerate(kids):
        for b in kids[i + 1 :]:
            overlap = max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))
            assert overlap == 0


def test_strips_for_wide_and_tall_images_quadrants_otherwise() -> None:
    assert children((0, 0, 2000, 1000)) == [
        (0, 0, 500, 1000),
        (500, 0, 1000, 1000),
        (1000, 0, 1500, 1000),
        (1500, 0, 2000, 1000),
    ]
    assert all(k[2] - k[0] == 1001 for k in children((0, 0, 1001, 2002)))  # tall: 4 horizontal strips
    assert [k[3] - k[1] for k in children((0, 0, 1001, 2002))] == [500, 501, 500, 501]
    assert children((0, 0, 1999, 1001)) == [
        (0, 0, 999, 500),
        (999, 0, 1999, 500),
        (0, 500, 999, 1001),
        (999, 500, 1999, 1001),
    ]


def test_leaf_rule_and_depth() -> None:
    assert TreeNode((0, 0, 128, 100), 1).is_leaf(native_side=128, max_depth=5)
    assert not TreeNode((0, 0, 129, 100), 1).is_leaf(native_side=128, max_depth=5)
    assert TreeNode((0, 0, 4000, 4000), 5).is_leaf(native_side=128, max_depth=5)
    assert tree_depth(2048, 2048, 128, 5) == 4  # 2048 -> 1024 -> 512 -> 256 -> 128
    assert tree_depth(2048, 2048, 128, 3) == 3
    assert tree_depth(100, 100, 128, 5) == 0


@given(
    st.tuples(st.integers(0, 900), st.integers(0, 900), st.integers(1, 300), st.integers(1, 300)),
    st.floats(1.0, 3.0),
    st.integers(0, 400),
)
def test_expand_box_stays_inside_and_grows(
    box_spec: tuple[int, int, int, int], factor: float, side: int
) -> None:
    x, y, w, h = box_spec
    box = (x, y, x + w, y + h)
    out = expand_box(box, factor, 1000, 1200, min_side=side)
    assert 0 <= out[0] < out[2] <= 1000 and 0 <= out[1] < out[3] <= 1200
    assert out[2] - out[0] >= min(1000, w) and out[3] - out[1] >= min(1200, h)


def test_map_mass_and_best_window_find_a_planted_peak() -> None:
    view = (100, 100, 900, 900)
    grid = np.ones((8, 8))
    grid[5, 2] = 50.0  # the cell x 300..400, y 600..700
    assert sum(map_mass(grid, view, cell) for cell in grid_cells(view, 2, 2)) == pytest.approx(1.0)
    window = best_window(grid, view, (150, 150), stride=25)
    assert window[0] <= 300 and window[2] >= 400 - 50 and window[1] <= 600 and window[3] >= 700 - 50
    assert window[2] - window[0] == 150 and window[3] - window[1] == 150


# ---------------------------------------------------------------------------------------------- rules
def test_priority_formula_against_hand_computed_values() -> None:
    assert depth_weight(0, 4, 0.2) == pytest.approx(0.2)
    assert depth_weight(2, 4, 0.2) == pytest.approx(0.2 + 0.8 * 0.25)
    assert depth_weight(4, 4, 0.6) == pytest.approx(1.0)
    # w = 0.4 at depth 2 of 4: 0.4 * 0.5 + 0.6 * (-0.5) = -0.1
    assert priority(0.5, -0.5, 2, 4, 0.2) == pytest.approx(-0.1)
    # depth 1 of 3, b = 0.6: w = 0.6 + 0.4 / 9
    w = 0.6 + 0.4 / 9
    assert priority(0.9, 0.1, 1, 3, 0.6) == pytest.approx(w * 0.9 + (1 - w) * 0.1)


def test_parse_cues() -> None:
    assert parse_cues("the red car, a blue umbrella and the dog.") == ["red car", "blue umbrella", "dog"]
    assert parse_cues("1. the cup\n2. the cup\n- Plate") == ["cup", "Plate"]


# ---------------------------------------------------------------------------------------------- oracle
def _saturated(rgb: np.ndarray) -> np.ndarray:
    """Pixels of target colour: every target has chroma >= 135, no clutter pixel above 50."""
    return (rgb.max(axis=2) - rgb.min(axis=2)) > 100


def _seeing(view: Image.Image, text: str) -> float:
    """What a perfect 128 px model would say to the tiny VLM's probes, from the pixels."""
    a = np.asarray(view.convert("RGB"))
    count = int(_saturated(a).sum())
    side = float(np.sqrt(count)) if count else 0.0  # the square as large as the saturated pixels
    if "zooming" in text:  # latent
        return 0.95 if count else 0.05
    return 0.95 if count and side * NATIVE / max(view.size) >= VISIBLE_PIXELS else 0.05


def _saturated_grid(view: Image.Image, invert: bool) -> np.ndarray:
    """Saturated pixels per cell of an 8 x 8 grid (``invert``: a map pointing everywhere but at them)."""
    saturated = _saturated(np.asarray(view.convert("RGB")).astype(int))
    h, w = saturated.shape
    grid = np.array(
        [
            [saturated[r * h // 8 : (r + 1) * h // 8, c * w // 8 : (c + 1) * w // 8].sum() for c in range(8)]
            for r in range(8)
        ],
        dtype=float,
    )
    return 1.0 / (1.0 + grid) if invert else grid + 1e-3


def seeing_oracle() -> ScriptedVLM:
    """Answers the tiny VLM's probes from the pixels: what a perfect 128 px model would say."""
    return ScriptedVLM(yes=_seeing, profile=VLMProfile.unknown(family="oracle"), model_id="seeing-oracle")


def map_oracle(invert: bool = False) -> ScriptedVLM:
    """The seeing oracle with relevance maps: saturated pixels per cell of an 8 x 8 grid (``invert``: a map
    that points everywhere but at the target, to exercise the fallback)."""
    return ScriptedVLM(
        yes=_seeing,
        relevance=lambda view, _question: _saturated_grid(view, invert),
        profile=VLMProfile.unknown(family="oracle"),
        model_id="map-oracle",
    )


def _agent(strategy: str, **kwargs: object) -> ZoomAgent:
    config = ZoomConfig(strategy=strategy, prompts=PROMPTS, native_side=NATIVE, relevance=False, **kwargs)  # type: ignore[arg-type]
    return ZoomAgent(seeing_oracle(), config)


def _contains(box: tuple[int, int, int, int], point: tuple[float, float]) -> bool:
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


@pytest.mark.parametrize("strategy", ["zoomeye", "fast"])
def test_search_stops_at_the_answering_threshold_on_a_crop_that_shows_the_target(strategy: str) -> None:
    image, item = generate_scene(5, 0)
    result = _agent(strategy).run(image, item.question, item.options, cues=wording_cues(item.question))
    assert not result.budget_exhausted
    threshold = PROMPTS.answer_threshold
    stops = [v for v in result.visits if v.confidence is not None and v.confidence >= threshold]
    assert stops, "the search never reached a node the model can answer from"
    final = stops[-1]
    assert result.crops == [final.box]
    # it stopped there: nothing was visited after the first node over the threshold
    assert result.visits[-1].order == final.order or strategy == "fast"
    assert all(_contains(final.box, t.center) for t in item.targets)
    assert result.answer_box is not None and all(_contains(result.answer_box, t.center) for t in item.targets)


def test_fast_uses_fewer_probes_than_zoomeye_on_the_same_scene() -> None:
    image, item = generate_scene(5, 1)
    cues = wording_cues(item.question)
    slow = _agent("zoomeye").run(image, item.question, item.options, cues=cues)
    fast = _agent("fast").run(image, item.question, item.options, cues=cues)
    assert fast.crops and slow.crops
    assert fast.probes < slow.probes


def _map_agent(vlm: ScriptedVLM, **kwargs: object) -> ZoomAgent:
    config = ZoomConfig(strategy="fast", prompts=PROMPTS, native_side=NATIVE, relevance=True, **kwargs)  # type: ignore[arg-type]
    return ZoomAgent(vlm, config)


def test_a_relevance_map_replaces_probing_every_child() -> None:
    image, item = generate_scene(5, 0)
    cues = wording_cues(item.question)
    ranked_by_probes = _agent("fast").run(image, item.question, item.options, cues=cues)
    oracle = map_oracle()
    by_map = _map_agent(oracle, top_children=1).run(image, item.question, item.options, cues=cues)
    assert oracle.calls["relevance"] > 0
    assert by_map.crops and all(_contains(by_map.crops[-1], t.center) for t in item.targets)
    assert by_map.probes < ranked_by_probes.probes
    # below relevance_from_depth the children are ranked by the map: some were never probed at all
    probed = {v.box for v in by_map.visits if v.latent is not None or v.confidence is not None}
    assert len(probed) < len({v.box for v in ranked_by_probes.visits})


def test_a_map_pointing_the_wrong_way_falls_back_to_latent_probes() -> None:
    image, item = generate_scene(5, 0)
    cues = wording_cues(item.question)
    result = _map_agent(map_oracle(invert=True), top_children=1).run(
        image, item.question, item.options, cues=cues
    )
    assert result.crops and all(_contains(result.crops[-1], t.center) for t in item.targets)
    without = _map_agent(map_oracle(invert=True), top_children=1, map_fallback=None).run(
        image, item.question, item.options, cues=cues
    )
    assert result.probes < without.probes or not (
        without.crops and all(_contains(without.crops[-1], t.center) for t in item.targets)
    )


def _area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


@pytest.mark.parametrize("index", [1, 3, 5])
def test_tightening_shrinks_the_answer_crop_and_keeps_both_objects(index: int) -> None:
    image, item = generate_scene(5, index)
    assert item.category == "relation"
    cues = wording_cues(item.question)
    loose = _map_agent(map_oracle(), tighten_crops=None, local_levels=None).run(
        image, item.question, item.options, cues=cues
    )
    oracle = map_oracle()
    tight = _map_agent(oracle, tighten_crops=0.5, local_levels=None).run(
        image, item.question, item.options, cues=cues
    )
    assert loose.answer_box is not None and tight.answer_box is not None
    assert all(_contains(loose.answer_box, t.center) for t in item.targets)
    assert all(_contains(tight.answer_box, t.center) for t in item.targets)
    # the same search; then each crop wider than the model's input shrinks to a window inside it, one map each
    assert len(tight.crops) == len(loose.crops) == 2
    wide = [c for c in loose.crops if max(c[2] - c[0], c[3] - c[1]) > NATIVE]
    assert wide, "this scene's searches should stop on crops wider than the input"
    assert tight.probes == loose.probes + len(wide)
    for before, after in zip(loose.crops, tight.crops, strict=True):
        assert before[0] <= after[0] and before[1] <= after[1]
        assert after[2] <= before[2] and after[3] <= before[3]
    assert _area(tight.answer_box) < _area(loose.answer_box)


def _cue_pixels(view: Image.Image, text: str) -> int:
    """Saturated pixels of the colour the probe names (all saturated pixels when it names none)."""
    a = np.asarray(view.convert("RGB")).astype(int)
    saturated = _saturated(a)
    for name, rgb in COLORS.items():
        if name in text:
            return int((saturated & (np.abs(a - np.array(rgb)).max(axis=2) <= 40)).sum())
    return int(saturated.sum())


def _cue_seeing(view: Image.Image, text: str) -> float:
    """The seeing oracle, told apart by colour: a probe naming a colour sees only pixels of that colour."""
    count = _cue_pixels(view, text)
    if "zooming" in text:
        return 0.95 if count else 0.05
    apparent = np.sqrt(count) * NATIVE / max(view.size)  # graded below visibility, as a real model is
    return 0.95 if apparent >= VISIBLE_PIXELS else 0.05 + 0.5 * apparent / VISIBLE_PIXELS


def _cue_agent(prompts: ZoomPrompts = PROMPTS, **kwargs: object) -> ZoomAgent:
    config = ZoomConfig(strategy="fast", prompts=prompts, native_side=NATIVE, relevance=False, **kwargs)  # type: ignore[arg-type]
    return ZoomAgent(ScriptedVLM(yes=_cue_seeing, model_id="cue-oracle"), config)


@pytest.mark.parametrize("index", [1, 3, 5, 7])
def test_a_later_cue_is_searched_near_the_earlier_one_first(index: int) -> None:
    image, item = generate_scene(5, index)
    cues = wording_cues(item.question)
    latent_ranked = PROMPTS.model_copy(
        update={"rank_cues_by_stop": False, "max_pops": None, "pops_per_level": None}
    )
    near = _cue_agent(latent_ranked, local_levels=1).run(image, item.question, item.options, cues=cues)
    from_root = _cue_agent(latent_ranked, local_levels=None).run(
        image, item.question, item.options, cues=list(cues)
    )
    for result in (near, from_root):
        assert len(result.crops) == 2
        assert all(_contains(crop, t.center) for crop, t in zip(result.crops, item.targets, strict=True))
    second = [v for v in near.visits if v.cue == cues[1]]
    first_found = next(v for v in near.visits if v.cue == cues[0] and v.box == near.crops[0])
    assert first_found.depth >= 2  # deep enough to have an anchor: the second search starts there
    assert second[0].depth == first_found.depth - 1 and _contains(second[0].box, first_found.box[:2])
    assert not [v for v in near.visits if v.cue == cues[1] and v.depth == -1]  # no already-shown probe
    assert [v for v in from_root.visits if v.cue == cues[1] and v.depth == -1]


def test_ranking_by_the_cue_stop_probe_gives_every_child_its_stop() -> None:
    image, item = generate_scene(5, 1)
    cues = wording_cues(item.question)
    by_stop = _cue_agent(
        PROMPTS.model_copy(update={"rank_cues_by_stop": True, "max_pops": None, "pops_per_level": None})
    ).run(image, item.question, item.options, cues=cues)
    by_latent = _cue_agent(
        PROMPTS.model_copy(update={"rank_cues_by_stop": False, "max_pops": None, "pops_per_level": None})
    ).run(image, item.question, item.options, cues=cues)
    children = [v for v in by_stop.visits if v.priority is not None]
    assert children and all(v.confidence is not None and v.latent is None for v in children)
    assert [v for v in by_latent.visits if v.latent is not None]
    assert by_stop.probes < by_latent.probes
    assert all(_contains(crop, t.center) for crop, t in zip(by_stop.crops, item.targets, strict=True))


def test_existence_ranks_children_from_its_depth_on() -> None:
    image, item = generate_scene(5, 0)
    cues = wording_cues(item.question)
    prompts = PROMPTS.model_copy(
        update={
            "existence_from_depth": 2,
            "existence_below_side": None,
            "max_pops": None,
            "pops_per_level": None,
        }
    )
    result = _cue_agent(prompts, first_level_side=None).run(image, item.question, item.options, cues=cues)
    children = [v for v in result.visits if v.priority is not None]
    assert {v.depth for v in children} >= {1, 2}
    assert all((v.existence is not None) == (v.depth >= 2) for v in children)
    assert all((v.latent is not None) == (v.depth < 2) for v in children)


@pytest.mark.parametrize("where", ["preset", "config"])
def test_a_pop_cap_from_the_preset_or_the_config_ends_a_lost_search(where: str) -> None:
    image, item = generate_scene(5, 0)
    absent = next(c for c in COLORS if c not in {t.color for t in item.targets})
    lost = [f"{absent} square"]  # not in the scene: the search never stops on its own
    prompts = PROMPTS.model_copy(
        update={"max_pops": 3 if where == "preset" else None, "pops_per_level": None}
    )
    # every level from the root's children, so that each expansion ranks exactly 4 nodes
    options: dict[str, object] = {"first_level_side": None}
    agent = _cue_agent(prompts, **options, **({"max_pops": 3} if where == "config" else {}))
    capped = agent.run(image, item.question, item.options, cues=lost)
    free = _cue_agent(PROMPTS.model_copy(update={"max_pops": None, "pops_per_level": None}), **options).run(
        image, item.question, item.options, cues=lost
    )

    def expansions(visits: list[Visit]) -> int:  # each pop probes its 4 children, which get priorities
        return sum(v.priority is not None for v in visits) // 4

    assert 1 <= expansions(capped.visits) <= 3 < expansions(free.visits)
    assert capped.probes < free.probes


def test_max_pops_caps_a_fast_search() -> None:
    image, item = generate_scene(5, 0)
    cues = wording_cues(item.question)
    oracle = map_oracle(invert=True)
    result = _map_agent(oracle, top_children=1, map_fallback=None, max_pops=2).run(
        image, item.question, item.options, cues=cues
    )
    uncapped = _map_agent(map_oracle(invert=True), top_children=1, map_fallback=None).run(
        image, item.question, item.options, cues=cues
    )
    assert oracle.calls["relevance"] <= 2 * len(cues)  # one map per pop that expands a node
    assert result.probes < uncapped.probes
    assert result.answer in item.options


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    probes=st.one_of(st.none(), st.integers(0, 40)),
    passes=st.one_of(st.none(), st.integers(1, 12)),
    tokens=st.one_of(st.none(), st.integers(200, 4000)),
    strategy=st.sampled_from(["zoomeye", "fast"]),
)
def test_budget_is_never_exceeded(
    probes: int | None, passes: int | None, tokens: int | None, strategy: str
) -> None:
    image, item = generate_scene(5, 2)
    agent = _agent(
        strategy,
        max_probes=probes,
        max_forward_passes=passes,
        budget=TokenBudget(max_total_tokens=tokens) if tokens else None,
    )
    result = agent.run(image, item.question, item.options, cues=wording_cues(item.question))
    if probes is not None:
        assert result.probes <= probes
    if passes is not None:
        assert result.forward_passes <= passes
    if tokens is not None:
        assert result.usage.total <= tokens
    assert result.answer in item.options  # it always answers, from the best node found so far


def test_a_tight_budget_says_so_and_still_answers() -> None:
    image, item = generate_scene(5, 3)
    agent = _agent("zoomeye", max_probes=3)
    result = agent.run(image, item.question, item.options, cues=wording_cues(item.question))
    assert result.budget_exhausted and result.probes <= 3
    assert any("probe cap" in note for note in result.notes)
    assert result.answer in item.options


def test_trace_png_has_the_image_size(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from foveate.imaging.draw import save_trace

    image, item = generate_scene(5, 0)
    result = _agent("fast").run(image, item.question, item.options, cues=wording_cues(item.question))
    path = save_trace(image, result.visits, tmp_path / "trace.png", result.answer_box)
    with Image.open(path) as drawn:
        assert drawn.format == "PNG" and drawn.size == image.size
        # something was drawn: the picture differs from the scene
        drawn_pixels = np.asarray(drawn.convert("RGB"), dtype=int)
        assert np.abs(drawn_pixels - np.asarray(image.convert("RGB"), dtype=int)).sum() > 0


# ------------------------------------------------------------------ fast: levels, asking ahead, memo
def test_the_first_level_ranked_scales_with_the_image_and_is_capped() -> None:
    from foveate.zoom.strategies.fast import first_level

    cfg = ZoomConfig(first_level_side=4.0, max_first_level_nodes=64)
    # the first level whose nodes' longer side is at most 4 x 128 = 512 px
    assert [first_level(side, side, NATIVE, cfg) for side in (400, 1000, 2048, 2049, 4000)] == [1, 1, 2, 3, 3]
    assert first_level(8000, 6000, NATIVE, cfg) == 3  # level 4 would rank 256 nodes: capped at 64
    assert first_level(8000, 6000, NATIVE, cfg.model_copy(update={"max_first_level_nodes": 256})) == 4
    assert first_level(8000, 6000, NATIVE, cfg.model_copy(update={"first_level_side": None})) == 1


def test_fast_ranks_the_first_level_worth_probing_and_still_finds_the_target() -> None:
    image, item = generate_scene(5, 0)  # about 1900 px: level 2 (about 475 px nodes) comes first
    cues = wording_cues(item.question)
    skipping = _cue_agent().run(image, item.question, item.options, cues=cues)
    every_level = _cue_agent(first_level_side=None).run(image, item.question, item.options, cues=cues)
    ranked = [v for v in skipping.visits if v.priority is not None]
    assert min(v.depth for v in ranked) == 2
    assert len([v for v in ranked if v.depth == 2]) >= 16  # the root's expansion: its 16 grandchildren
    assert min(v.depth for v in every_level.visits if v.priority is not None) == 1
    for result in (skipping, every_level):
        assert result.crops and all(_contains(result.crops[0], t.center) for t in item.targets)
    assert skipping.forward_passes < every_level.forward_passes


def test_asking_ahead_saves_forward_passes_and_changes_no_answer() -> None:
    saved = 0
    for index in range(6):
        image, item = generate_scene(5, index)
        cues = wording_cues(item.question)
        ahead = _cue_agent().run(image, item.question, item.options, cues=cues)
        step_by_step = _cue_agent(ask_ahead=False).run(image, item.question, item.options, cues=cues)
        assert ahead.crops == step_by_step.crops and ahead.answer == step_by_step.answer
        assert ahead.forward_passes <= step_by_step.forward_passes
        saved += step_by_step.forward_passes - ahead.forward_passes
        # what it pays: at most the children of the node it stopped at, per cue
        assert ahead.probes <= step_by_step.probes + 4 * len(cues)
    assert saved > 0


@pytest.mark.parametrize("strategy", ["zoomeye", "fast"])
def test_no_probe_is_sent_to_the_model_twice_in_one_search(strategy: str) -> None:
    asked: list[tuple[int, tuple[int, int], str]] = []

    def recording(view: Image.Image, text: str) -> float:
        asked.append((hash(view.tobytes()), view.size, text))
        return _cue_seeing(view, text)

    image, item = generate_scene(5, 1)  # a relation question: two cues, whose stop probe is existence
    config = ZoomConfig(strategy=strategy, prompts=PROMPTS, native_side=NATIVE, relevance=False)
    result = ZoomAgent(ScriptedVLM(yes=recording), config).run(
        image, item.question, item.options, cues=wording_cues(item.question)
    )
    assert result.crops and len(asked) == result.probes
    assert len(set(asked)) == len(asked)


def test_an_existence_floor_moves_on_from_children_that_do_not_show_the_cue() -> None:
    image, item = generate_scene(5, 0)
    absent = next(c for c in COLORS if c not in {t.color for t in item.targets})
    lost = [f"{absent} square"]  # never found: every deep ranking says the cue is not there
    # the seeing oracle's "no" is a confidence of -0.9, the tiny VLM's about -0.998: the floor sits above
    floored = _cue_agent(existence_floor=-0.85).run(image, item.question, item.options, cues=lost)
    unfloored = _cue_agent(existence_floor=None).run(image, item.question, item.options, cues=lost)
    assert floored.forward_passes < unfloored.forward_passes
    assert floored.probes < unfloored.probes


def test_truth_boxes_give_the_grounding_of_the_answer_crop() -> None:
    image, item = generate_scene(5, 1)  # two targets
    cues = wording_cues(item.question)
    truth = [t.box for t in item.targets]
    found = _agent("fast").run(image, item.question, item.options, cues=cues, truth=truth)
    assert found.grounding is not None and found.grounding.crop == found.answer_box
    assert found.grounding.holds_all and found.grounding.held == [True, True]
    corner = (0, 0, 2, 2)
    off = _agent("fast").run(image, item.question, item.options, cues=cues, truth=[corner, truth[0]])
    assert off.answer_box is not None and off.grounding is not None
    assert off.grounding.held == [_contains(off.answer_box, (1, 1)), True]
    whole = _agent("direct").run(image, item.question, item.options, truth=[corner])
    assert whole.answer_box is None and whole.grounding is not None and whole.grounding.holds_all
    assert _agent("fast").run(image, item.question, item.options, cues=cues).grounding is None


def test_the_tiny_presets_rules_scale_with_the_image() -> None:
    """Existence ranks views of at most two native sides and the pop cap grows with the tree: the same rule
    gives depth 3 and 10 pops on a 2000 px image, and deeper levels and more pops on an 8000 px one."""
    from foveate.vlm.budget import TokenLedger
    from foveate.zoom.context import SearchContext
    from foveate.zoom.meter import Meter
    from foveate.zoom.strategies.fast import Fast

    def context(side: int) -> SearchContext:
        image = Image.new("RGB", (side, side))
        config = ZoomConfig(strategy="fast", native_side=NATIVE)
        return SearchContext(
            seeing_oracle(), config, PROMPTS, NATIVE, image, Meter(None, None, TokenLedger())
        )

    def ranks_by_existence(ctx: SearchContext, depth: int) -> bool:
        node = TreeNode(ctx.full, 0)
        while node.depth < depth:
            node = node.expand()[0]
        return Fast._rank_prompt(ctx, node, "red square", "stop", False).startswith("Is there")

    small, large = context(2000), context(8000)
    assert [ranks_by_existence(small, d) for d in (2, 3)] == [False, True]
    assert [ranks_by_existence(large, d) for d in (4, 5)] == [False, True]
    assert Fast().pop_limit(small) == 10 and Fast().pop_limit(large) == 12


# ---------------------------------------------------------------------------------------------------------
# Search priors from experience (foveate.zoom.experience)
# ---------------------------------------------------------------------------------------------------------


def test_the_prior_of_right_searches_asks_fewer_probes_and_finds_the_same_crop() -> None:
    from foveate.zoom.experience import experience_of, prior_from

    image, item = generate_scene(5, 0)
    cues = wording_cues(item.question)
    truth = [t.box for t in item.targets]
    plain = _agent("zoomeye").run(image, item.question, item.options, cues=cues, truth=truth)
    assert plain.grounding is not None and plain.grounding.holds_all
    # what a memory says after five right runs like this one
    seen = experience_of(plain.visits, "zoomeye", image.size, plain.probes)
    prior = prior_from([(seen, True)] * 5, "zoomeye")
    assert prior is not None and prior.rank_by in ("existence", "latent")
    other = "latent" if prior.rank_by == "existence" else "existence"
    primed = _agent("zoomeye").run(image, item.question, item.options, cues=cues, prior=prior, truth=truth)
    assert primed.prior == prior and primed.prior_fallbacks == 0
    assert primed.crops == plain.crops and primed.answer == plain.answer
    # the ranked children (a pop the prior asks no stop probe of is recorded too, with no score)
    alone = [
        v for v in primed.visits if v.confidence is None and not v.popped and v.depth >= prior.rank_from_depth
    ]
    assert alone and all(getattr(v, other) is None and getattr(v, prior.rank_by) is not None for v in alone)
    assert all(v.depth >= prior.min_stop_depth for v in primed.visits if v.confidence is not None)
    assert primed.probes < plain.probes


@pytest.mark.parametrize("index", [0, 1])  # an attribute question, a relation one
def test_experience_counts_a_searchs_pops_in_the_unit_a_prior_caps(index: int) -> None:
    from foveate.zoom.experience import experience_of, prior_from

    image, item = generate_scene(5, index)
    cues = wording_cues(item.question)
    fast = _agent("fast")
    plain = fast.run(image, item.question, item.options, cues=cues)
    seen = experience_of(plain.visits, "fast", image.size, plain.probes)
    assert seen.cues
    for cue in seen.cues:
        mine = [v for v in plain.visits if v.cue == cue.cue]
        assert cue.pops == sum(bool(v.popped) for v in mine) >= 1
        # fast's children carry their stop confidences for free: more stop-probed views than pops
        assert sum(v.confidence is not None for v in mine) > cue.pops
    # a prior allowing exactly the pops this search took finds the same crops
    prior = prior_from([(seen, True)] * 5, "fast", spare_pops=0)
    assert prior is not None and prior.max_pops == max(c.pops for c in seen.cues)
    primed = fast.run(image, item.question, item.options, cues=cues, prior=prior)
    assert primed.crops == plain.crops and primed.prior_fallbacks == 0


def test_a_prior_that_points_nowhere_falls_back_to_the_plain_search() -> None:
    from foveate.zoom.experience import SearchPrior

    image, item = generate_scene(5, 0)
    cues = wording_cues(item.question)
    # no stop probe above depth 12 and one pop: the prior's search can find nothing
    misleading = SearchPrior(min_stop_depth=12, max_pops=1)
    plain = _agent("zoomeye").run(image, item.question, item.options, cues=cues)
    primed = _agent("zoomeye").run(image, item.question, item.options, cues=cues, prior=misleading)
    assert primed.prior_fallbacks == len(cues) and any("without it" in n for n in primed.notes)
    assert primed.crops == plain.crops and primed.answer == plain.answer
    # the fallback asks nothing the prior's search already asked: at most that one pop's probes more
    assert primed.probes <= plain.probes + 8 * len(cues)


def _dim_seeing(view: Image.Image, text: str) -> float:
    """The seeing oracle as the tiny VLM behaves on large scenes: where the object is too small to see,
    existence is low for every crop yet still a little higher on the crop that holds it, and the latent
    probe says "maybe" (0.3) of every crop, a little more (0.35) of the one that holds it."""
    holds = bool(_saturated(np.asarray(view.convert("RGB"))).any())
    if "zooming" in text:
        return 0.35 if holds else 0.3
    seen = _seeing(view, text)
    return seen if seen > 0.5 else 0.02 + 0.06 * holds


def _dim_agent() -> ZoomAgent:
    """ZoomEye over the dim-seeing oracle (``_dim_seeing``)."""
    config = ZoomConfig(strategy="zoomeye", prompts=PROMPTS, native_side=NATIVE, relevance=False)
    vlm = ScriptedVLM(yes=_dim_seeing, profile=VLMProfile.unknown(family="oracle"), model_id="dim")
    return ZoomAgent(vlm, config)


def test_a_prior_ranking_by_one_probe_keeps_the_queue_on_zoomeyes_scale() -> None:
    from foveate.zoom.experience import experience_of, prior_from

    image, item = generate_scene(5, 0, size_range=(3000, 3400), target_size_range=(10, 14))
    cues = wording_cues(item.question)
    (target,) = item.targets
    agent = _dim_agent()
    plain = agent.run(image, item.question, item.options, cues=cues)
    assert plain.crops and _contains(plain.crops[0], target.center)
    seen = experience_of(plain.visits, "zoomeye", image.size, plain.probes)
    learned = prior_from([(seen, True)] * 5, "zoomeye")
    assert learned is not None and learned.rank_by == "existence"
    # where existence cannot see, the path's node scored about -0.84 and its siblings -0.96: the floor
    assert learned.rank_floor[2] == pytest.approx(-0.84)
    # existence alone from the second level on (the large scenes' prior ranked from the third): the first
    # level keeps ZoomEye's priorities, the other scale
    prior = learned.model_copy(update={"rank_from_depth": 2})
    primed = agent.run(image, item.question, item.options, cues=cues, prior=prior)
    assert primed.prior_fallbacks == 0 and primed.crops == plain.crops
    # queued at -0.84 the target's children would sink below the first-level nodes (latent "maybe");
    # at their parent's place, the search goes straight down to it
    popped = [v for v in primed.visits if v.popped]
    assert popped and all(_contains(v.box, target.center) for v in popped)
    assert primed.probes < plain.probes


def test_a_prior_can_start_the_search_on_a_whole_tree_level() -> None:
    """Where the levels above rank nothing (the dim oracle: existence sees nothing above the third level of a
    3,000 px image), a prior's ``start_depth`` ranks the whole third level by its one probe in one call and
    the search pops straight down from the best node, instead of walking down through the blind levels."""
    from foveate.zoom.experience import experience_of, prior_from

    image, item = generate_scene(5, 0, size_range=(3000, 3400), target_size_range=(10, 14))
    cues = wording_cues(item.question)
    (target,) = item.targets
    agent = _dim_agent()
    plain = agent.run(image, item.question, item.options, cues=cues)
    learned = prior_from(
        [(experience_of(plain.visits, "zoomeye", image.size, plain.probes), True)] * 5, "zoomeye"
    )
    assert learned is not None and learned.rank_by == "existence"
    prior = learned.model_copy(update={"rank_from_depth": 3, "start_depth": 3})
    primed = agent.run(image, item.question, item.options, cues=cues, prior=prior)
    assert primed.prior_fallbacks == 0 and primed.crops == plain.crops
    # the first visits: every node of the third level, once, scored by existence alone
    level = [n for a in TreeNode(plain.visits[0].box, 0).expand() for b in a.expand() for n in b.expand()]
    first = primed.visits[: len(level)]
    assert sorted(v.box for v in first) == sorted(n.box for n in level)
    assert all(v.depth == 3 and v.latent is None and v.existence is not None for v in first)
    # nothing above it is asked or popped, and every pop holds the target
    assert not any(v.depth < 3 for v in primed.visits if v.cue == cues[0])
    popped = [v for v in primed.visits if v.popped]
    assert popped and all(_contains(v.box, target.center) for v in popped)
    # the plain search popped its way down through the root and the first two levels; this one did not
    assert (
        len(popped)
        == len([v for v in plain.visits if v.popped and v.depth >= 3])
        < len([v for v in plain.visits if v.popped])
    )


def test_a_whole_level_start_stops_at_the_leaves_of_a_shallower_tree() -> None:
    from foveate.vlm.budget import TokenLedger
    from foveate.zoom.context import SearchContext
    from foveate.zoom.experience import SearchPrior
    from foveate.zoom.meter import Meter
    from foveate.zoom.strategies.zoomeye import ZoomEye

    image, _ = generate_scene(5, 0, size_range=(300, 300), target_size_range=(10, 14))
    agent = _dim_agent()
    ctx = SearchContext(agent.vlm, agent.config, PROMPTS, NATIVE, image, Meter(None, None, TokenLedger()))
    ctx.prior = SearchPrior(rank_by="existence", rank_from_depth=2, start_depth=3)
    first = ZoomEye().first_nodes(ctx, TreeNode((0, 0, 300, 300), 0), "square")
    # 300 px: 150 px at depth 1, 75 px leaves at depth 2 (native 128): the start is those 16 leaves
    assert first is not None and len(first) == 16 and {node.depth for _, node, _ in first} == {2}


def test_a_prior_starts_on_the_level_its_probe_led_from_when_that_level_is_small_enough() -> None:
    from foveate.zoom.experience import CueExperience, SearchExperience, prior_from

    def led_from(depth: int, probe: str = "existence") -> SearchExperience:
        depths = list(range(1, 5))
        cue = CueExperience(
            cue="star",
            depth=4,
            share=0.004,
            region=(0.1, 0.1, 0.16, 0.16),
            stop_confidence=0.9,
            pops=5,
            ranked={probe: depths},
            led={probe: [d for d in depths if d >= depth]},
        )
        return SearchExperience(strategy="zoomeye", image_size=(3200, 3200), probes=60, cues=[cue])

    for depth, start in ((1, 0), (2, 2), (3, 3), (4, 0)):  # depth 4: 256 nodes, more than 64
        prior = prior_from([(led_from(depth), True)] * 5, "zoomeye")
        assert prior is not None and prior.rank_from_depth == depth and prior.start_depth == start, depth
        assert prior.changes
    assert prior_from([(led_from(4), True)] * 5, "zoomeye", max_start_nodes=256).start_depth == 4  # type: ignore[union-attr]
    latent = prior_from([(led_from(3, "latent"), True)] * 5, "zoomeye")
    assert latent is not None and (latent.rank_by, latent.start_depth) == ("latent", 3)
    relevance = prior_from([(led_from(3, "relevance"), True)] * 5, "zoomeye")
    assert relevance is not None and (relevance.rank_by, relevance.start_depth) == ("relevance", 0)
    # fast starts on a level of its own; its prior neither sets the start nor says it does
    fast = prior_from([(led_from(3).model_copy(update={"strategy": "fast"}), True)] * 5, "fast")
    assert fast is not None and fast.rank_by == "existence" and fast.start_depth == 0
    assert not any("starts" in reason for reason in fast.reasons)


def test_experience_keeps_the_path_scores_and_the_prior_a_low_quantile_of_them() -> None:
    from foveate.zoom.experience import SearchExperience, experience_of, prior_from

    image, item = generate_scene(5, 0)
    cues = wording_cues(item.question)
    plain = _agent("zoomeye").run(image, item.question, item.options, cues=cues)
    seen = experience_of(plain.visits, "zoomeye", image.size, plain.probes)
    (cue,) = seen.cues
    assert set(cue.path_scores) == set(cue.ranked) == {"existence", "latent"}
    assert all(set(cue.path_scores[p]) == set(cue.ranked[p]) for p in cue.ranked)
    first = prior_from([(seen, True)] * 5, "zoomeye")
    assert first is not None and first.rank_by is not None
    probe = first.rank_by

    def scored(value: float) -> SearchExperience:
        low = {probe: dict.fromkeys(cue.ranked[probe], value)}
        return seen.model_copy(update={"cues": [cue.model_copy(update={"path_scores": low})]})

    prior = prior_from([(seen, True)] * 4 + [(scored(-0.5), True)], "zoomeye", floor_quantile=0.0)
    assert prior is not None and prior.rank_by == probe
    assert prior.rank_floor == {d: -0.5 for d in cue.ranked[probe] if d >= prior.rank_from_depth}
    # by default a low quantile: one right search of five scoring low does not set it
    assert prior_from([(seen, True)] * 4 + [(scored(-0.5), True)], "zoomeye") == first
    two_low = prior_from([(seen, True)] * 3 + [(scored(-0.5), True)] * 2, "zoomeye")
    assert two_low is not None and two_low.rank_floor == prior.rank_floor
    again = prior_from([(seen, True)] * 5 + [(scored(-0.9), False)], "zoomeye")  # a wrong run shapes nothing
    assert again is not None and again.rank_floor == first.rank_floor
    assert first.rank_floor == {d: v for d, v in cue.path_scores[probe].items() if d >= first.rank_from_depth}


def test_a_prior_without_early_answers_skips_fasts_early_stop() -> None:
    from foveate.zoom.experience import SearchPrior

    image, item = generate_scene(5, 0)
    cues = wording_cues(item.question)
    plain = _agent("fast").run(image, item.question, item.options, cues=cues)
    primed = _agent("fast").run(
        image,
        item.question,
        item.options,
        cues=cues,
        prior=SearchPrior(skip_early_stop=True, min_stop_depth=2),
    )
    assert any(v.depth == 0 and v.confidence is not None for v in plain.visits)
    assert not any(v.depth < 2 and v.confidence is not None for v in primed.visits)
    assert primed.crops == plain.crops and primed.probes < plain.probes


@pytest.mark.parametrize("invert", [False, True])
def test_a_prior_that_trusts_the_map_asks_no_latent_probes_on_the_rest(invert: bool) -> None:
    from foveate.zoom.experience import SearchPrior

    image, item = generate_scene(5, 1)
    cues = wording_cues(item.question)
    plain = _map_agent(map_oracle(invert=invert)).run(image, item.question, item.options, cues=cues)
    trusting = SearchPrior(rank_by="relevance", rank_from_depth=0, max_pops=4)
    primed = _map_agent(map_oracle(invert=invert)).run(
        image, item.question, item.options, cues=cues, prior=trusting
    )
    if not invert:  # the map points at the targets: trusting it costs nothing and finds the same crops
        assert primed.prior_fallbacks == 0 and primed.crops == plain.crops
        assert primed.probes <= plain.probes
    else:  # a map that points away: the trusting search finds nothing, and the plain search then does
        assert primed.prior_fallbacks >= 1 and primed.crops == plain.crops


@pytest.mark.parametrize("writes", [True, False])
def test_a_search_without_cues_asks_the_model_for_them_only_if_it_writes(writes: bool) -> None:
    """The `zoom` workflow has no perceive node: the search lists the cues itself. A model that cannot write
    (the tiny VLM) once answered the cue-listing prompt with a colour and the search looked for that."""
    image, item = generate_scene(7, 0)
    vlm = ScriptedVLM(generate=lambda images, prompt: "yellow", profile=VLMProfile.unknown(writes=writes))
    result = ZoomAgent(vlm, ZoomConfig(strategy="fast", max_probes=10)).run(
        image, item.question, item.options
    )
    assert item.question == "What is the color of the square?"
    assert result.cues == (["yellow"] if writes else ["square"])
    assert vlm.calls["generate"] == (1 if writes else 0)


# ---------------------------------------------------------------------------- the question's options
_PINK, _RED = (235, 90, 175), COLORS["red"]


def _two_circles() -> Image.Image:
    """A big pink circle up left (no option's colour) and a smaller red one down right (the target)."""
    from PIL import ImageDraw

    image = Image.new("RGB", (1024, 1024), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    draw.ellipse((100, 100, 144, 144), fill=_PINK)
    draw.ellipse((800, 820, 830, 850), fill=_RED)
    return image


def _options_seeing(view: Image.Image, text: str) -> float:
    """A shape-only oracle: its cue probes see any saturated circle (the bigger, the surer); its answering
    probe, when the options are in the prompt, says Yes only to a circle in an offered colour."""
    a = np.asarray(view.convert("RGB")).astype(int)
    saturated = _saturated(a)
    if "Options:" in text:
        offered = [rgb for name, rgb in COLORS.items() if name in text.split("Options:")[1]]
        saturated &= np.any([np.abs(a - np.array(rgb)).max(axis=2) <= 40 for rgb in offered], axis=0)
    return _circle_seen(int(saturated.sum()), view, text)


def _circle_seen(count: int, view: Image.Image, text: str) -> float:
    """The oracles' answer from the count of pixels they see as the circle: a latent probe grows with it,
    the others say Yes once it is ``VISIBLE_PIXELS`` wide at the model's input."""
    if "zooming" in text:
        return 0.5 + 0.45 * min(1.0, count / 3000) if count else 0.05
    return 0.95 if count and np.sqrt(count) * NATIVE / max(view.size) >= VISIBLE_PIXELS else 0.05


@pytest.mark.parametrize("strategy", ["zoomeye", "fast"])
def test_the_stop_probe_asks_with_the_options_when_the_prompts_say_how(strategy: str) -> None:
    question, options = "What is the color of the circle?", ["red", "blue", "green", "yellow"]
    red, pink = (815, 835), (122, 122)

    def run(joined: str | None) -> tuple[int, int, int, int]:
        prompts = PROMPTS.model_copy(update={"answering_options": joined, "pops_per_level": None})
        config = ZoomConfig(strategy=strategy, prompts=prompts, native_side=NATIVE, relevance=False)
        vlm = ScriptedVLM(yes=_options_seeing, model_id="options-oracle")
        result = ZoomAgent(vlm, config).run(_two_circles(), question, options, cues=["circle"])
        assert result.answer_box is not None and result.question == question
        return result.answer_box

    with_options = run("{q} Options: {options}.")
    assert _contains(with_options, red) and not _contains(with_options, pink)
    # the question alone: the pink circle, ranked first, answers it as well as the red one would
    alone = run(None)
    assert _contains(alone, pink) and not _contains(alone, red)


def test_search_question_joins_the_options_only_when_asked_to() -> None:
    joined = PROMPTS.model_copy(update={"answering_options": "{q} Options: {options}."})
    assert joined.search_question("What?", ["red", "blue"]) == "What? Options: red, blue."
    assert joined.search_question("What?", None) == "What?"
    assert PROMPTS.search_question("What?", ["red", "blue"]) == "What?"


# ---------------------------------------------------------------------------- cues named by the options
def _named_seeing(view: Image.Image, text: str) -> float:
    """A shape-only oracle that reads colour words: a probe naming "red circle" sees red circles only, a bare
    "circle" any saturated circle; the answering probe (no options in it) any circle clearly visible."""
    a = np.asarray(view.convert("RGB")).astype(int)
    saturated = _saturated(a)
    named = [rgb for name, rgb in COLORS.items() if f"{name} circle" in text]
    if named:
        saturated &= np.abs(a - np.array(named[0])).max(axis=2) <= 40
    return _circle_seen(int(saturated.sum()), view, text)


@pytest.mark.parametrize("strategy", ["zoomeye", "fast"])
def test_option_cues_rank_by_the_objects_the_options_name(strategy: str) -> None:
    """``option_cue``: "circle" asked as "red circle", "blue circle", ... (the most confident counts) ranks
    the red circle first, where the bare cue ranks the bigger pink one (no option's colour) first and the
    question-alone stop probe accepts it."""
    question, options = "What is the color of the circle?", ["red", "blue", "green", "yellow"]
    red, pink = (815, 835), (122, 122)

    def run(option_cue: str | None) -> tuple[tuple[int, int, int, int], int]:
        prompts = PROMPTS.model_copy(update={"option_cue": option_cue, "pops_per_level": None})
        # fast's early stop asks the quadrants the (option-less) stop probe before ranking anything, and the
        # pink one answers it: this test is about the ranking
        config = ZoomConfig(
            strategy=strategy, prompts=prompts, native_side=NATIVE, relevance=False, early_stop=False
        )
        vlm = ScriptedVLM(yes=_named_seeing, model_id="named-oracle")
        result = ZoomAgent(vlm, config).run(_two_circles(), question, options, cues=["circle"])
        assert result.answer_box is not None
        return result.answer_box, result.probes

    (named, named_probes), (bare, bare_probes) = run("{option} {o}"), run(None)
    assert _contains(named, red) and not _contains(named, pink)
    assert _contains(bare, pink) and not _contains(bare, red)
    assert named_probes > bare_probes  # each named probe is asked once per option, and counted so


def test_cue_variants_name_one_cue_by_each_option() -> None:
    prompts = PROMPTS.model_copy(update={"option_cue": "{option} {o}"})
    variants = prompts.cue_variants(["square"], ["red", "blue"])
    assert variants == {
        PROMPTS.existence.format(o="square"): [
            PROMPTS.existence.format(o=f"{c} square") for c in ("red", "blue")
        ],
        PROMPTS.latent.format(o="square"): [PROMPTS.latent.format(o=f"{c} square") for c in ("red", "blue")],
    }
    assert prompts.cue_variants(["red circle", "blue square"], ["left", "right"]) == {}  # several cues
    assert prompts.cue_variants(["square"], None) == {}
    assert PROMPTS.cue_variants(["square"], ["red", "blue"]) == {}  # the family's default: off


# ---------------------------------------------------------------------------- narrowing the cues' crops
def _near_pair() -> Image.Image:
    """A red and a blue circle side by side, 14 px each, in a 2048 px image."""
    from PIL import ImageDraw

    image = Image.new("RGB", (2048, 2048), (128, 128, 128))
    draw = ImageDraw.Draw(image)
    draw.ellipse((1300, 1300, 1314, 1314), fill=COLORS["red"])
    draw.ellipse((1350, 1310, 1364, 1324), fill=COLORS["blue"])
    return image


@pytest.mark.parametrize("strategy", ["zoomeye", "fast"])
def test_narrowed_cue_crops_keep_both_objects_in_a_smaller_answer_crop(strategy: str) -> None:
    """``narrow_cues``: each cue's crop becomes the half-side window its existence probe is surest of, so
    the answer crop of a two-cue question shrinks around the objects (which it still holds)."""
    question, options = "Is the red circle to the left or to the right of the blue circle?", ["left", "right"]
    red, blue = (1307, 1307), (1357, 1317)

    def run(narrow: bool) -> tuple[tuple[int, int, int, int], list[Visit]]:
        prompts = PROMPTS.model_copy(update={"narrow_cues": narrow, "pops_per_level": None})
        config = ZoomConfig(
            strategy=strategy, prompts=prompts, native_side=NATIVE, relevance=False, tighten_crops=None
        )
        vlm = ScriptedVLM(yes=_named_seeing, model_id="named-oracle")
        result = ZoomAgent(vlm, config).run(
            _near_pair(), question, options, cues=["red circle", "blue circle"]
        )
        assert result.answer_box is not None
        return result.answer_box, result.visits

    (narrowed, visits), (plain, _) = run(True), run(False)
    for box in (narrowed, plain):
        assert _contains(box, red) and _contains(box, blue)
    assert box_area(narrowed) < box_area(plain)
    assert (
        sum(v.existence is not None and v.order >= len(visits) - 18 for v in visits) == 18
    )  # one pass, 2 x 9


def test_option_variants_fold_by_the_surest_and_every_asked_probe_is_counted() -> None:
    """``SearchContext.variants``: a probe asked as several counts as the most confident of them, several
    questions about one view fold separately, and the meter counts every probe the model was asked."""
    from foveate.vlm.budget import TokenLedger
    from foveate.zoom.context import SearchContext
    from foveate.zoom.meter import Meter

    scores = {"is red": 0.9, "is blue": 0.2, "is green": 0.1, "plain": 0.6, "a": 0.3, "b": 0.7}
    asked: list[str] = []

    def yes(view: Image.Image, text: str) -> float:
        asked.append(text)
        return scores[text]

    image = Image.new("RGB", (512, 512))
    ctx = SearchContext(
        ScriptedVLM(yes=yes, model_id="folding"),
        ZoomConfig(strategy="fast", native_side=NATIVE),
        PROMPTS,
        NATIVE,
        image,
        Meter(None, None, TokenLedger()),
    )
    ctx.variants = {"colour?": ["is blue", "is green", "is red"], "pair?": ["a", "b"]}
    (row,) = ctx.probe([(0, 0, 256, 256)], [["colour?", "plain", "pair?"]])
    assert row == pytest.approx([2 * 0.9 - 1, 2 * 0.6 - 1, 2 * 0.7 - 1])
    assert sorted(asked) == sorted(["is blue", "is green", "is red", "plain", "a", "b"])
    assert ctx.meter.probes == 6
    assert ctx.probe([(0, 0, 256, 256)], [["colour?"]]) == [[pytest.approx(0.8)]]  # answered: not asked again
    assert ctx.meter.probes == 6
