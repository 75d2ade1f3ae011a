"""Labels of the tiny VLM's training views follow from geometry, and a short training run learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foveate.fixtures.scenes import generate_scene
from foveate.fixtures.tasks import (
    COLOR_IDS,
    VISIBLE_PIXELS,
    answerable,
    examples_for_scene,
    findable,
    patch_color_map,
    sample_views,
    tree_children,
    visible,
)
from foveate.fixtures.train import TrainConfig, train
from foveate.vlm import TransformersVLM, VLMRequest


@pytest.mark.parametrize("box", [(0, 0, 1537, 2011), (10, 20, 11 + 801, 20 + 200), (0, 0, 200, 803)])
def test_tree_children_tile_their_parent(box: tuple[int, int, int, int]) -> None:
    children = tree_children(box)
    assert len(children) == 4
    area = sum((c[2] - c[0]) * (c[3] - c[1]) for c in children)
    assert area == (box[2] - box[0]) * (box[3] - box[1])
    for c in children:
        assert box[0] <= c[0] < c[2] <= box[2] and box[1] <= c[1] < c[3] <= box[3]


def test_small_targets_are_invisible_in_whole_scenes_but_findable() -> None:
    for index in range(12):
        image, item = generate_scene(3, index)
        whole = (0, 0, image.width, image.height)
        assert not answerable(item, whole, 128)  # every target is < 6 px once the scene is 128 px wide
        for target in item.targets:
            assert findable(target, whole) and not visible(target, whole, 128)
            tight = (target.box[0] - 40, target.box[1] - 40, target.box[0] + 88, target.box[1] + 88)
            assert visible(target, tight, 128)  # a 128 px view at native scale shows it


def test_views_and_labels_are_consistent() -> None:
    rng = np.random.default_rng(0)
    image, item = generate_scene(5, 1)
    views = list(sample_views(image, item, rng, 128))
    assert views[0] == (0, 0, image.width, image.height)
    examples = examples_for_scene(image, item, rng, 128)
    assert {e.kind for e in examples} >= {"existence", "latent", "answerable"}
    for ex in examples:
        assert ex.image.size == (128, 128)
        if ex.question == item.question:
            assert ex.answer == item.answer
        elif ex.kind == "relation":  # the same pair asked the other way round
            assert {ex.answer, item.answer} == {"left", "right"}
    target = item.targets[0]
    view = (target.box[0] - 30, target.box[1] - 30, target.box[0] + 98, target.box[1] + 98)
    grid = patch_color_map(item, view, 128, 8)
    assert target.size >= VISIBLE_PIXELS and (grid == COLOR_IDS[target.color]).any()
    assert not patch_color_map(item, (0, 0, image.width, image.height), 128, 8).any()


def test_short_training_lowers_the_loss_and_saves_a_loadable_model(tmp_path: Path) -> None:
    cfg = TrainConfig(scenes=6, eval_scenes=2, epochs=3, batch_size=16)
    result = train(cfg, tmp_path / "model", progress=False)
    losses = result["losses"]
    assert len(losses) >= 20
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3])
    vlm = TransformersVLM(tmp_path / "model")
    image, item = generate_scene(9, 0)
    scored = vlm.score(VLMRequest.from_prompt(item.question, [image]), item.options)
    assert scored.options == item.options and all(np.isfinite(scored.logprobs))


def test_question_cues_name_the_objects_of_every_benchmark_question() -> None:
    from foveate.fixtures.scenes import generate_scene
    from foveate.fixtures.tasks import object_name, question_cues

    for index in range(12):
        _, item = generate_scene(3, index)
        cues = question_cues(item.question)
        if item.category == "attribute":
            assert cues == [item.targets[0].shape]
        else:
            assert sorted(cues) == sorted(object_name(t) for t in item.targets)
    with pytest.raises(ValueError, match="not a benchmark question"):
        question_cues("How many cats are there?")


def test_color_positions_give_each_visible_target_its_horizontal_place() -> None:
    from foveate.fixtures.scenes import COLORS, crop_around, generate_scene, union_box
    from foveate.fixtures.tasks import color_positions, visible

    image, item = generate_scene(3, 1)
    _, view = crop_around(image, union_box(item), None, np.random.default_rng(0), context=1.5, min_side=128)
    xs = color_positions(item, view, 128)
    shown = [t for t in item.targets if visible(t, view, 128)]
    assert shown
    for target in shown:
        x = xs[list(COLORS).index(target.color)]
        assert x == pytest.approx((target.center[0] - view[0]) / (view[2] - view[0]))
        assert 0.0 <= x <= 1.0
    assert np.isnan(xs).sum() == len(COLORS) - len(shown)
    whole = (0, 0, image.width, image.height)
    assert np.isnan(color_positions(item, whole, 128)).all()  # nothing is clearly visible in a whole scene
