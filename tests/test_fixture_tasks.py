"""Labels of the tiny VLM's training views follow from geometry, and a short training run learns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from foveate.synthetic import HARD, PLAIN, generate_scene
from foveate.testing.tiny_models import make_llava
from foveate.tiny_vlm.losses import answer_loss, focus_loss
from foveate.tiny_vlm.recipe import SHAPE, Batcher, TrainConfig, build_examples, model_shape
from foveate.tiny_vlm.tasks import (
    COLOR_IDS,
    answerable,
    examples_for_scene,
    focus_mask,
    patch_color_map,
    questions_for_view,
)
from foveate.tiny_vlm.train import train
from foveate.tiny_vlm.views import VISIBLE_PIXELS, NodeViews, findable, sample_views, tree_children, visible
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


def test_paired_probes_ask_about_the_target_and_an_absent_object() -> None:
    image, item = generate_scene(5, 1)
    single = examples_for_scene(image, item, np.random.default_rng(0), 128)
    paired = examples_for_scene(image, item, np.random.default_rng(0), 128, paired=True)
    assert len(paired) > len(single)
    names = {t.shape for t in item.targets} | {f"{t.color} {t.shape}" for t in item.targets}
    crops = [e for e in paired[-40:] if e.kind == "existence"]
    asked_target = [e for e in crops if any(f"a {n} in" in e.question for n in names)]
    assert asked_target and len(crops) > len(asked_target)  # both kinds of question on the crops
    assert all(e.answer == "No" for e in crops if e not in asked_target)


def test_node_views_set_how_many_tree_nodes_and_which_probes_they_ask() -> None:
    image, item = generate_scene(5, 1, world=HARD)
    default = list(sample_views(image, item, np.random.default_rng(0), 128))
    assert default == list(sample_views(image, item, np.random.default_rng(0), 128, nodes=NodeViews()))
    nodes = NodeViews(count=6, toward=0.0, min_depth=3, existence=True)
    views = list(sample_views(image, item, np.random.default_rng(0), 128, nodes=nodes))
    assert len(views) == len(default) + 3
    full = image.width * image.height
    for x0, y0, x1, y1 in views[1:7]:  # three levels down at least: a 64th of the image at most
        assert (x1 - x0) * (y1 - y0) <= full / 64 + image.width + image.height

    def existence_questions(node_existence: bool) -> int:
        asked = NodeViews(count=6, toward=0.0, min_depth=3, existence=node_existence)
        examples = examples_for_scene(image, item, np.random.default_rng(0), 128, paired=True, nodes=asked)
        return sum(e.kind == "existence" for e in examples)

    # one on the whole image, a pair on each of the four crops, and with ``existence`` a pair on each node
    # (the target and an absent object), else one
    assert existence_questions(True) == 1 + 4 * 2 + 6 * 2
    assert existence_questions(False) == 1 + 4 * 2 + 6


def test_focus_mask_covers_the_object_and_its_centre_patch() -> None:
    image, item = generate_scene(5, 1)
    target = item.targets[0]
    view = (target.box[0] - 30, target.box[1] - 30, target.box[0] + 98, target.box[1] + 98)
    mask = focus_mask([target], view, 8)
    assert mask is not None and mask.shape == (8, 8)
    cx, cy = int((target.center[0] - view[0]) / 16), int((target.center[1] - view[1]) / 16)
    assert mask[cy, cx] and mask.sum() <= (target.size // 16 + 2) ** 2
    whole = (0, 0, image.width, image.height)
    tiny = focus_mask([target], whole, 8)
    assert tiny is not None and 1 <= tiny.sum() <= 4  # a few pixels wide there: its centre patch (and edge)
    assert focus_mask([], view, 8) is None


def test_focus_loss_is_minus_log_of_the_attention_mass_on_the_focus_patches() -> None:
    import torch

    image_id = 7
    ids = torch.tensor([[1, 7, 7, 7, 7, 2, 3, 4, 0]])  # 4 image tokens, prompt ends at index 5 (length 8)
    attention = torch.zeros(1, 2, 9, 9)
    attention[0, 0, 5, 1:5] = torch.tensor([0.1, 0.2, 0.3, 0.2])  # head 0: 0.8 on the image
    attention[0, 1, 5, 1:5] = torch.tensor([0.4, 0.1, 0.1, 0.0])  # head 1: 0.6 on the image
    focus = torch.tensor([[False, True, True, False]])
    loss = focus_loss(attention, ids, torch.tensor([8]), focus, image_id)
    # head-averaged weights over the image: [0.25, 0.15, 0.2, 0.1]; on the focus patches 0.35 of 0.7
    assert loss is not None and abs(float(loss) + np.log(0.35 / 0.7 + 1e-6)) < 1e-5
    nothing = torch.zeros(1, 4, dtype=torch.bool)
    assert focus_loss(attention, ids, torch.tensor([8]), nothing, image_id) is None


def test_short_training_lowers_the_loss_and_saves_a_loadable_model(tmp_path: Path) -> None:
    cfg = TrainConfig(scenes=6, eval_scenes=2, epochs=3, batch_size=16, focus_epochs=0, grounding_epochs=0)
    result = train(cfg, tmp_path / "model", progress=False)
    losses = result["losses"]
    assert len(losses) >= 20
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3])
    vlm = TransformersVLM(tmp_path / "model")
    image, item = generate_scene(9, 0)
    scored = vlm.score(VLMRequest.from_prompt(item.question, [image]), item.options)
    assert scored.options == item.options and all(np.isfinite(scored.logprobs))


def test_wording_cues_name_the_objects_of_every_benchmark_question() -> None:
    from foveate.synthetic import generate_scene
    from foveate.tiny_vlm.tasks import object_name
    from foveate.zoom import wording_cues

    for index in range(12):
        _, item = generate_scene(3, index)
        cues = wording_cues(item.question)
        if item.category == "attribute":
            assert cues == [item.targets[0].shape]
        else:
            assert sorted(cues) == sorted(object_name(t) for t in item.targets)
    assert wording_cues("How many cats are there?") == []  # names no object: searched for as a whole


def test_color_positions_give_each_visible_target_its_horizontal_place() -> None:
    from foveate.synthetic import COLORS, crop_around, generate_scene, union_box
    from foveate.tiny_vlm.tasks import color_positions

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


def test_training_with_a_focusing_phase_runs_and_saves_a_plain_model(tmp_path: Path) -> None:
    cfg = TrainConfig(
        scenes=3,
        eval_scenes=1,
        epochs=1,
        batch_size=16,
        focus_epochs=1,
        focus_scenes=2,
        focus_weight=0.5,
        grounding_epochs=0,
    )
    result = train(cfg, tmp_path / "model", progress=False)
    first = len(build_examples(3, cfg.train_seed, cfg.seed, cfg.relation_repeats))
    second = len(
        build_examples(
            2,
            cfg.train_seed + 1,
            cfg.seed + 2,
            cfg.relation_repeats,
            True,
            (cfg.focus_context_min, cfg.focus_context_max),
        )
    )
    assert result["steps"] == -(-first // 16) + -(-second // 16)  # one epoch of each phase
    assert all(np.isfinite(result["losses"]))
    vlm = TransformersVLM(tmp_path / "model")
    assert vlm.config._attn_implementation != "eager"  # eager was switched on for training only
    image, item = generate_scene(9, 0)
    assert vlm.score(VLMRequest.from_prompt(item.question, [image]), item.options).options == item.options


@pytest.mark.parametrize(("bar", "starts"), [(0.0, 1), (1.01, 3)])
def test_grounding_restarts_from_the_next_seed_until_relation_reaches_its_bar(
    tmp_path: Path, bar: float, starts: int
) -> None:
    """Grounding trains on side and relation questions only; a start below the bar is retried from the
    next seed, at most ``grounding_tries`` times, then training goes on."""
    cfg = TrainConfig(
        scenes=4,
        eval_scenes=2,
        epochs=0,
        focus_epochs=0,
        batch_size=16,
        grounding_epochs=1,
        grounding_bar=bar,
        grounding_tries=3,
    )
    where = [
        ex
        for ex in build_examples(4, cfg.train_seed, cfg.seed, cfg.relation_repeats)
        if ex.kind in ("side", "relation")
    ]
    assert where
    result = train(cfg, tmp_path / "model", progress=False)
    assert result["steps"] == starts * -(-len(where) // 16)
    assert set(result["accuracy"]) <= {"side", "relation"}


def test_answer_loss_equals_the_models_own_label_loss() -> None:
    """The loss on the gathered answer rows is the one ``labels`` gives, on every position's logits."""
    import torch

    model, processor = make_llava(0, SHAPE)
    image, item = generate_scene(3, 0)
    examples = examples_for_scene(image, item, np.random.default_rng(0), 128)[:6]
    inputs = Batcher(processor)(examples)
    for key in ("patch_colors", "patch_shapes", "color_x", "focus"):
        inputs.pop(key, None)
    with torch.no_grad():
        ours, _ = answer_loss(model, inputs, output_attentions=False)
        theirs = model(**inputs).loss
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)


def test_training_with_no_steps_saves_the_model_it_started_from(tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    first = TrainConfig(scenes=2, eval_scenes=1, epochs=1, batch_size=16, focus_epochs=0, grounding_epochs=0)
    train(first, tmp_path / "a", progress=False)
    again = TrainConfig(
        scenes=2, eval_scenes=1, epochs=0, focus_epochs=0, grounding_epochs=0, init=str(tmp_path / "a")
    )
    result = train(again, tmp_path / "b", progress=False)
    assert result["steps"] == 0
    a, b = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_tighter_context_gives_tighter_target_crops() -> None:
    from foveate.synthetic import union_box

    for index in range(6):
        image, item = generate_scene(3, index)
        x0, y0, x1, y1 = union_box(item)
        longer = max(x1 - x0, y1 - y0)
        rng = np.random.default_rng(index)
        crops = list(sample_views(image, item, rng, 128, context=(1.1, 1.2)))[4:]
        assert len(crops) == 4
        for c in crops:
            side = c[2] - c[0]
            assert side <= max(128, int(np.ceil(1.2 * longer)))
            assert c[0] <= x0 and c[1] <= y0 and x1 <= c[2] and y1 <= c[3]  # the targets stay inside


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.7])
def test_a_world_mix_holds_both_question_categories_in_both_worlds(fraction: float) -> None:
    # a scene's category follows its index's parity: a mix spread by index once put every hard scene of a
    # half-and-half mix on relation questions and every plain one on attribute questions
    from foveate.synthetic.items import CATEGORIES
    from foveate.tiny_vlm.recipe import hard_scene

    assert [generate_scene(0, i)[1].category for i in range(4)] == [*CATEGORIES, *CATEGORIES]
    n = 200
    for offset, category in enumerate(CATEGORIES):
        hard = [hard_scene(i, fraction) for i in range(offset, n, 2)]
        assert abs(np.mean(hard) - fraction) <= 0.02, (category, np.mean(hard))
    assert abs(np.mean([hard_scene(i, fraction) for i in range(n)]) - fraction) <= 0.01


def test_distractor_patches_carry_their_own_colour_and_shape() -> None:
    from foveate.synthetic import HARD
    from foveate.tiny_vlm.tasks import PATCH_COLOR_IDS, SHAPE_IDS, patch_shape_map

    _, item = generate_scene(7, 0, world=HARD)
    odd = next(d for d in item.distractors if d.color not in COLOR_IDS)  # pink, cyan or brown
    cx, cy = (int(c) for c in odd.center)
    view = (cx - 64, cy - 64, cx + 64, cy + 64)
    at = (4, 4)  # the view's centre patch holds the distractor's centre
    assert patch_color_map(item, view, 128, 8)[at] == PATCH_COLOR_IDS[odd.color] > len(COLOR_IDS)
    assert patch_shape_map(item, view, 128, 8)[at] == SHAPE_IDS[odd.shape]


def test_a_harder_world_mix_grounds_in_the_plain_world_and_trains_the_shape_probe(tmp_path: Path) -> None:
    from foveate.tiny_vlm.trainee import make_trainee, training_loss

    cfg = TrainConfig(
        scenes=4,
        eval_scenes=4,
        epochs=1,
        focus_epochs=0,
        batch_size=16,
        grounding_epochs=1,
        grounding_bar=0.0,
        hard_fraction=0.5,
        shape_weight=1.0,
    )
    mixed = build_examples(4, cfg.train_seed, cfg.seed, cfg.relation_repeats, hard_fraction=0.5)
    assert {ex.world for ex in mixed} == {"plain", "hard"}
    plain_grounding = [  # grounding: every training scene, drawn in the plain world
        ex
        for ex in build_examples(4, cfg.train_seed, cfg.seed, cfg.relation_repeats)
        if ex.kind in ("side", "relation")
    ]
    result = train(cfg, tmp_path / "model", progress=False)
    assert result["steps"] == -(-len(plain_grounding) // 16) + -(-len(mixed) // 16)
    assert any(key.startswith("hard/") for key in result["accuracy"])  # held out in both worlds

    trainee, processor = make_trainee(cfg, 0)
    batch = [ex for ex in mixed if ex.world == "hard"][:4]
    with_shapes = Batcher(processor)(batch)
    assert (with_shapes["patch_shapes"] > 0).any()
    losses = []
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        inputs = {k: v.clone() for k, v in with_shapes.items()}
        losses.append(float(training_loss(trainee, inputs, 0.0, TrainConfig(shape_weight=weight)).detach()))
    assert losses[1] > losses[0]  # the shape probe's cross-entropy is part of the loss


def test_shape_questions_name_the_one_visible_object_of_a_colour() -> None:
    """``shape_questions``: "What is the shape of the red object?" is asked about a clearly visible target
    when no other visible object has its colour (a red distractor beside it would make it unanswerable), and
    its answer is the target's shape; the other questions and the random draws stay what they were."""
    from foveate.synthetic import HARD

    image, item = generate_scene(5, 0, world=HARD)
    without = examples_for_scene(image, item, np.random.default_rng(0), 128)
    asked = examples_for_scene(image, item, np.random.default_rng(0), 128, shape_questions=True)
    assert [e.question for e in asked if e.kind != "shape"] == [e.question for e in without]
    target = item.targets[0]
    twin = next(d for d in item.distractors if d.color == target.color)  # a same-colour distractor
    alone = (target.box[0] - 20, target.box[1] - 20, target.box[0] + 108, target.box[1] + 108)
    both = (
        min(target.box[0], twin.box[0]) - 5,
        min(target.box[1], twin.box[1]) - 5,
        max(target.box[2], twin.box[2]) + 5,
        max(target.box[3], twin.box[3]) + 5,
    )
    assert (
        twin.box[2] <= alone[0]
        or twin.box[0] >= alone[2]
        or twin.box[3] <= alone[1]
        or twin.box[1] >= alone[3]
    )

    def shape_questions(view: tuple[int, int, int, int]) -> list[tuple[str, str]]:
        questions = questions_for_view(item, view, np.random.default_rng(0), 128, shapes=True)
        return [(q.text, q.answer) for q in questions if q.kind == "shape"]

    assert shape_questions(alone) == [(f"What is the shape of the {target.color} object?", target.shape)]
    assert visible(target, both, 128) and visible(twin, both, 128)  # both clearly seen: which one is meant?
    assert shape_questions(both) == []


def test_a_finer_patch_grid_trains_and_saves_a_model_with_four_times_the_visual_tokens(
    tmp_path: Path,
) -> None:
    cfg = TrainConfig(
        scenes=2, eval_scenes=1, epochs=1, batch_size=16, focus_epochs=0, grounding_epochs=0, patch_size=8
    )
    result = train(cfg, tmp_path / "fine", progress=False)
    assert result["steps"] > 0 and all(np.isfinite(result["losses"]))
    vlm = TransformersVLM(tmp_path / "fine")
    config = vlm.model.config
    assert config.vision_config.patch_size == 8 and config.image_seq_length == 256
    image, item = generate_scene(9, 0)
    scored = vlm.score(VLMRequest.from_prompt(item.question, [image]), item.options)
    assert all(np.isfinite(scored.logprobs))
    # fine-tuning keeps the saved grid, and says so when the run asks for another
    with pytest.raises(ValueError, match="has 8 px patches, this run 16: pass --patch-size 8"):
        train(
            TrainConfig(
                scenes=1,
                eval_scenes=1,
                epochs=1,
                focus_epochs=0,
                grounding_epochs=0,
                init=str(tmp_path / "fine"),
            ),
            tmp_path / "again",
            progress=False,
        )
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize("patch", [0, 7, 256])
def test_a_patch_side_that_does_not_tile_the_input_is_refused(patch: int) -> None:
    with pytest.raises(ValueError, match=f"--patch-size {patch} does not tile"):
        model_shape(patch)


def test_probe_options_ask_the_answerability_probe_with_the_question_and_its_options() -> None:
    """``probe_options``: the answerability probe asks the question with its options (the wording a model
    so trained takes as ``ZoomPrompts.answering_options``), its labels and every other question unchanged;
    a view showing only the target's shape in a colour no option offers is labelled unanswerable."""
    from foveate.tiny_vlm.tasks import ANSWERABLE, OPTIONS_LINE
    from foveate.vlm.families.foveate_tiny import FAMILY

    # the search's own joining (ZoomPrompts.search_question), so training and search word it alike
    searched = FAMILY.zoom.model_copy(update={"answering_options": OPTIONS_LINE})

    for index in range(6):
        image, item = generate_scene(5, index, world=HARD)
        plain = examples_for_scene(image, item, np.random.default_rng(0), 128, paired=True)
        told = examples_for_scene(image, item, np.random.default_rng(0), 128, paired=True, probe_options=True)
        assert [(e.kind, e.answer) for e in told] == [(e.kind, e.answer) for e in plain]
        joined = searched.search_question(item.question, item.options)
        assert joined != item.question
        for before, after in zip(plain, told, strict=True):
            if before.kind == "answerable":
                assert (before.question, after.question) == (
                    ANSWERABLE.format(question=item.question),
                    ANSWERABLE.format(question=joined),
                )
                assert all(option in after.question for option in item.options)
            else:
                assert after.question == before.question
    found = []
    for index in range(0, 40, 2):  # attribute questions: a same-shape distractor in a colour not offered
        image, item = generate_scene(5, index, world=HARD)
        target = item.targets[0]
        for d in item.distractors:
            if d.shape == target.shape and d.color not in item.options:
                view = (d.box[0] - 20, d.box[1] - 20, d.box[2] + 20, d.box[3] + 20)
                if visible(d, view, 128) and not findable(target, view):
                    found.append(answerable(item, view, 128))
    assert found and not any(found)


def test_the_harder_worlds_answerability_can_ask_for_larger_targets() -> None:
    """``hard_answer_pixels``: a harder-world view answers its question only once every target is that many
    input pixels wide; the plain world keeps ``VISIBLE_PIXELS``."""
    for world in (HARD, PLAIN):
        _, item = generate_scene(5, 0, world=world)
        target = item.targets[0]
        # a view around the target that shows it 8 input pixels wide
        side = round(target.size * 128 / 8)
        cx, cy = target.center
        view = (
            round(cx - side / 2),
            round(cy - side / 2),
            round(cx - side / 2) + side,
            round(cy - side / 2) + side,
        )
        assert answerable(item, view, 128)
        assert answerable(item, view, 128, hard_pixels=10) is (world is PLAIN)
        # the label the training examples carry follows it
        labels = {
            q.answer
            for q in questions_for_view(item, view, np.random.default_rng(0), 128, hard_answer_pixels=10)
            if q.kind == "answerable"
        }
        assert labels == ({"Yes"} if world is PLAIN else {"No"})


def test_confuser_nodes_walk_toward_a_distractor_of_a_targets_shape() -> None:
    """``NodeViews.confusers``: in the harder world, that many more image-tree nodes (depth 2 and deeper),
    each holding a distractor of a target's shape, where the answerability probe learns to say No; none in
    the plain world, and the other views unchanged."""
    seen = 0
    for index in range(6):
        image, item = generate_scene(5, index, world=HARD)
        shapes = {t.shape for t in item.targets}
        base = list(sample_views(image, item, np.random.default_rng(0), 128))
        views = list(sample_views(image, item, np.random.default_rng(0), 128, nodes=NodeViews(confusers=3)))
        assert views[: len(base)] == base
        extra = views[len(base) :]
        assert len(extra) == 3
        for view in extra:
            assert max(view[2] - view[0], view[3] - view[1]) <= max(image.size) / 4 + 1  # depth 2 or deeper
            held = [d for d in item.distractors if d.shape in shapes and findable(d, view)]
            assert held
            seen += not answerable(item, view, 128)
        examples = examples_for_scene(
            image, item, np.random.default_rng(0), 128, paired=True, nodes=NodeViews(confusers=3)
        )
        fewer = examples_for_scene(image, item, np.random.default_rng(0), 128, paired=True)
        assert sum(e.kind == "answerable" for e in examples) == sum(e.kind == "answerable" for e in fewer) + 3
    assert seen >= 12  # mostly views where the question cannot be answered
    image, item = generate_scene(5, 0)
    assert len(
        list(sample_views(image, item, np.random.default_rng(0), 128, nodes=NodeViews(confusers=3)))
    ) == len(list(sample_views(image, item, np.random.default_rng(0), 128)))


def test_the_recipe_hands_confuser_nodes_and_answer_pixels_to_the_focusing_examples() -> None:
    """``--node-confusers`` and ``--hard-answer-pixels`` reach the focusing phase's examples."""
    from foveate.tiny_vlm.train import focusing_examples

    def answerable_labels(**options: float) -> list[str]:
        cfg = TrainConfig(focus_scenes=4, focus_hard_fraction=1.0, **options)  # type: ignore[arg-type]
        return [e.answer for e in focusing_examples(cfg) if e.kind == "answerable"]

    base = answerable_labels()
    assert "Yes" in base
    assert len(answerable_labels(node_confusers=2)) == len(base) + 4 * 2
    assert "Yes" not in answerable_labels(hard_answer_pixels=1000)
