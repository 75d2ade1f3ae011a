"""The seeing phase's views carry labels that follow from what is drawn, and its tower reaches the model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from foveate.synthetic import COLORS, DISTRACTOR_COLORS, SHAPES
from foveate.tiny_vlm.seeing import draw_view, see
from foveate.tiny_vlm.tasks import PATCH_COLOR_IDS

COLOR_OF_ID = {i: {**dict(COLORS.items()), **DISTRACTOR_COLORS}[name] for name, i in PATCH_COLOR_IDS.items()}


@pytest.mark.parametrize("seed", range(6))
def test_every_object_is_drawn_in_its_colour_where_its_patches_say(seed: int) -> None:
    view = draw_view(np.random.default_rng(seed), 128, 8)
    pixels = np.asarray(view.image, dtype=np.int64)
    assert view.image.size == (128, 128) and view.objects
    for (left, top, right, bottom), shape_id, color_id in view.objects:
        assert 1 <= shape_id <= len(SHAPES) and 1 <= color_id <= len(PATCH_COLOR_IDS)
        cx, cy = (left + right) / 2, (top + bottom) / 2
        row, col = int(cy // 16), int(cx // 16)
        # the patch holding the object's centre names it (objects never overlap: a gap is kept)
        assert view.shapes[row, col] == shape_id and view.colors[row, col] == color_id
        if right - left >= 12:  # every shape covers its centre; small ones blur into the background
            seen = pixels[int(cy) - 1 : int(cy) + 2, int(cx) - 1 : int(cx) + 2].reshape(-1, 3).mean(axis=0)
            assert np.abs(seen - np.asarray(COLOR_OF_ID[color_id])).max() <= 40, (seen, color_id)
    # labelled patches are those of the objects, and only those
    assert set(np.unique(view.shapes)) <= {0, *(s for _, s, _ in view.objects)}
    assert ((view.shapes > 0) == (view.colors > 0)).all()


def test_views_are_deterministic_per_generator_state() -> None:
    a, b = draw_view(np.random.default_rng(5), 128, 8), draw_view(np.random.default_rng(5), 128, 8)
    assert a.image.tobytes() == b.image.tobytes() and (a.shapes == b.shapes).all()
    c = draw_view(np.random.default_rng(6), 128, 8)
    assert a.image.tobytes() != c.image.tobytes()


def test_a_view_often_holds_two_objects_of_one_colour_or_one_shape() -> None:
    rng = np.random.default_rng(0)
    shared = 0
    for _ in range(200):
        pairs = [(s, c) for _, s, c in draw_view(rng, 128, 8).objects]
        shapes, colors = [s for s, _ in pairs], [c for _, c in pairs]
        shared += len(set(shapes)) < len(shapes) or len(set(colors)) < len(colors)
    assert shared >= 60  # the confusions the existence probe must learn not to make


def test_seeing_trains_the_tower_and_the_trainer_starts_from_it(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from foveate.tiny_vlm.recipe import TrainConfig
    from foveate.tiny_vlm.train import train
    from foveate.tiny_vlm.trainee import make_trainee

    cfg = TrainConfig(scenes=2, eval_scenes=1, epochs=0, focus_epochs=0, grounding_epochs=0)
    trainee, processor = make_trainee(cfg, 0)
    tower = trainee.model.model.vision_tower
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    accuracy = see(tower, processor, steps=3, lr=1e-3, batch_size=4, seed=0, eval_views=8)
    trainee.close()
    assert {"shape", "colour"} <= set(accuracy)
    assert any(not torch.equal(before[k], v) for k, v in tower.state_dict().items())

    train(cfg, tmp_path / "plain", progress=False)
    seeing = TrainConfig(**{**vars(cfg), "seeing_steps": 3, "seeing_batch_size": 4})
    train(seeing, tmp_path / "seen", progress=False)
    plain = load_file(tmp_path / "plain" / "model.safetensors")
    seen = load_file(tmp_path / "seen" / "model.safetensors")
    vision = [k for k in plain if "vision_tower" in k]
    others = [k for k in plain if "vision_tower" not in k]
    assert vision and others
    # with no other phase, the saved tower is the seen one and everything else is the start's
    assert any(not torch.equal(plain[k], seen[k]) for k in vision)
    assert all(torch.equal(plain[k], seen[k]) for k in others)


def test_the_binding_phase_trains_on_the_questions_where_shape_decides_only(tmp_path: Path) -> None:
    import math

    from foveate.tiny_vlm.recipe import TrainConfig
    from foveate.tiny_vlm.train import focusing_examples, train

    cfg = TrainConfig(
        scenes=2,
        eval_scenes=1,
        epochs=0,
        grounding_epochs=0,
        focus_epochs=0,
        binding_epochs=1,
        focus_scenes=2,
        focus_hard_fraction=1.0,
        shape_questions=True,
        batch_size=8,
    )
    result = train(cfg, tmp_path / "model", progress=False)
    second = focusing_examples(cfg)
    deciding = [ex for ex in second if ex.kind in ("shape", "existence")]
    assert 0 < len(deciding) < len(second) and {ex.kind for ex in deciding} == {"shape", "existence"}
    assert result["steps"] == math.ceil(len(deciding) / cfg.batch_size)
