"""Synthetic V*-like scenes: deterministic, valid manifests, answers that match the pixels, crops that hold
their targets."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from foveate.errors import ManifestError
from foveate.synthetic import (
    CLUTTER_MAX_CHROMA,
    COLORS,
    HARD,
    PLAIN,
    SHAPES,
    Distractor,
    SceneItem,
    SceneObject,
    box_holds,
    crop_around,
    generate_scene,
    image_path,
    load_manifest,
    make_benchmark,
    objects_in_view,
    random_crop,
    union_box,
    world_named,
    worlds_named,
)
from foveate.synthetic.items import World

# Some scenes at full size, shared by the tests that only read them (about 50 ms each).
SCENES = [generate_scene(seed, index) for seed in (0, 1, 2) for index in range(8)]


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _nearest_color(rgb: np.ndarray) -> str:
    return min(COLORS, key=lambda name: float(np.sum((np.asarray(COLORS[name]) - rgb) ** 2)))


def _chroma(arr: np.ndarray) -> np.ndarray:
    a = arr.astype(np.int16)
    return a.max(axis=-1) - a.min(axis=-1)


# ------------------------------------------------------------------------------------------------------
# Determinism
# ------------------------------------------------------------------------------------------------------


def test_same_seed_and_index_give_identical_pixels_png_and_item() -> None:
    img_a, item_a = generate_scene(5, 3)
    img_b, item_b = generate_scene(5, 3)
    assert np.array_equal(np.asarray(img_a), np.asarray(img_b))
    assert _png(img_a) == _png(img_b)
    assert item_a == item_b
    assert item_a.model_dump_json() == item_b.model_dump_json()


def test_different_seed_or_index_gives_a_different_scene() -> None:
    img, item = generate_scene(5, 3)
    for other_img, other_item in (generate_scene(6, 3), generate_scene(5, 4)):
        assert other_item.id != item.id
        assert other_img.size != img.size or not np.array_equal(np.asarray(img), np.asarray(other_img))
        assert other_item.targets != item.targets


def test_scene_is_rgb_and_sized_within_range_with_both_aspects() -> None:
    sizes = set()
    for img, item in SCENES:
        assert img.mode == "RGB"
        assert img.size == (item.width, item.height)
        assert 1536 <= item.width <= 2048 and 1536 <= item.height <= 2048
        sizes.add(item.width > item.height)
    assert sizes == {True, False}  # both landscape and portrait occur


# ------------------------------------------------------------------------------------------------------
# Targets, questions, answers
# ------------------------------------------------------------------------------------------------------


def test_categories_alternate_by_index_and_can_be_forced() -> None:
    assert [generate_scene(0, i, size_range=(256, 256))[1].category for i in range(4)] == [
        "attribute",
        "relation",
        "attribute",
        "relation",
    ]
    _, item = generate_scene(0, 0, size_range=(256, 256), category="relation")
    assert item.category == "relation"
    with pytest.raises(ValueError, match="category"):
        generate_scene(0, 0, category="count")  # type: ignore[arg-type]


def test_targets_are_small_inside_the_image_and_apart() -> None:
    for _, item in SCENES:
        assert len(item.targets) == (1 if item.category == "attribute" else 2)
        for t in item.targets:
            x0, y0, x1, y1 = t.box
            assert 10 <= x1 - x0 <= 60 and 10 <= y1 - y0 <= 60
            margin = max(16, x1 - x0)
            assert x0 >= margin and y0 >= margin
            assert x1 <= item.width - margin and y1 <= item.height - margin
        if item.category == "relation":
            a, b = item.targets
            assert a.color != b.color and a.shape != b.shape
            assert abs(a.center[0] - b.center[0]) >= 2 * max(a.size, b.size)
            # not overlapping
            assert (
                a.box[2] <= b.box[0] or b.box[2] <= a.box[0] or a.box[3] <= b.box[1] or b.box[3] <= a.box[1]
            )


def test_relation_answer_matches_target_positions() -> None:
    answers = []
    for _, item in SCENES:
        if item.category != "relation":
            continue
        a, b = item.targets
        assert item.options == ["left", "right"]
        assert item.question == (
            f"Is the {a.color} {a.shape} to the left or to the right of the {b.color} {b.shape}?"
        )
        assert item.answer == ("left" if a.center[0] < b.center[0] else "right")
        assert item.options[item.answer_index] == item.answer
        answers.append(item.answer)
    assert set(answers) == {"left", "right"}


def test_attribute_answer_matches_the_target_colour_and_its_pixels() -> None:
    checked = 0
    for img, item in SCENES:
        arr = np.asarray(img)
        if item.category == "attribute":
            (target,) = item.targets
            assert item.question == f"What is the color of the {target.shape}?"
            assert len(item.options) == 4 and len(set(item.options)) == 4
            assert set(item.options) <= set(COLORS)
            assert item.answer == target.color == item.options[item.answer_index]
        for target in item.targets:
            cx, cy = (int(v) for v in target.center)
            pixel = arr[cy, cx].astype(int)
            assert _nearest_color(pixel) == target.color, (item.id, target, pixel)
            assert _chroma(pixel) >= 120
            checked += 1
    assert checked >= 30


def test_attribute_options_are_shuffled() -> None:
    positions = {item.answer_index for _, item in SCENES if item.category == "attribute"}
    assert len(positions) >= 2


def test_targets_are_the_only_saturated_pixels() -> None:
    for img, item in SCENES[:6]:
        chroma = _chroma(np.asarray(img))
        mask = np.ones(chroma.shape, dtype=bool)
        for t in item.targets:
            x0, y0, x1, y1 = t.box
            mask[y0:y1, x0:x1] = False
        assert int(chroma[mask].max()) <= CLUTTER_MAX_CHROMA + 1


def test_clutter_is_present() -> None:
    img, _ = SCENES[0]
    grey = np.asarray(img.convert("L"), dtype=np.float64)
    # Many distinct grey levels and strong local edges: shapes, lines and textures, not a flat background.
    assert len(np.unique(grey)) > 100
    edges = np.abs(np.diff(grey, axis=1)) > 30
    assert edges.mean() > 0.002


def test_large_targets_can_be_asked_for() -> None:
    _, item = generate_scene(3, 1, target_size_range=(200, 300))
    assert all(200 <= t.size <= 300 for t in item.targets)


# ------------------------------------------------------------------------------------------------------
# Manifest
# ------------------------------------------------------------------------------------------------------


def test_make_benchmark_round_trips_through_load_manifest(tmp_path: Path) -> None:
    items = make_benchmark(tmp_path, 6, seed=11)
    assert [item.category for item in items].count("attribute") == 3
    assert (tmp_path / "manifest.jsonl").read_text().count("\n") == 6
    assert load_manifest(tmp_path) == items
    assert load_manifest(tmp_path / "manifest.jsonl") == items
    for item in items:
        path = image_path(item, tmp_path)
        assert path == tmp_path / "images" / f"{item.id}.png"
        with Image.open(path) as png:
            assert png.size == (item.width, item.height)
    # Each item depends only on (seed, index): regenerating one alone gives the same file bytes.
    img, item = generate_scene(11, 4)
    assert item == items[4]
    assert (tmp_path / item.image).read_bytes() == _png(img)


def test_a_bad_manifest_line_is_named(tmp_path: Path) -> None:
    _, item = generate_scene(0, 0, size_range=(256, 256))
    good = item.model_dump_json()
    bad = json.loads(good)
    bad["answer"] = "magenta"
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(f"{good}\n\n{json.dumps(bad)}\n")
    with pytest.raises(ManifestError, match=r"manifest\.jsonl, line 3: .*magenta"):
        load_manifest(tmp_path)
    manifest.write_text(f"{good}\n{{not json\n")
    with pytest.raises(ManifestError, match=r"manifest\.jsonl, line 2"):
        load_manifest(manifest)
    with pytest.raises(ManifestError, match="nowhere"):
        load_manifest(tmp_path / "nowhere.jsonl")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"answer": "pink"}, "not one of the options"),
        ({"answer_index": 5}, "answer_index"),
        ({"options": ["left", "right"]}, "options"),
        ({"width": 20}, "not inside"),
        ({"category": "relation"}, "relation"),
        ({"targets": []}, "exactly one target"),
    ],
)
def test_scene_item_validators_reject_inconsistent_items(change: dict[str, object], message: str) -> None:
    _, item = generate_scene(0, 0, size_range=(256, 256))
    data = item.model_dump() | change
    with pytest.raises(ValidationError, match=message):
        SceneItem.model_validate(data)


def test_scene_object_rejects_an_empty_box_and_unknown_vocabulary() -> None:
    with pytest.raises(ValidationError, match="empty"):
        SceneObject(shape="star", color="red", box=(5, 5, 5, 9))
    with pytest.raises(ValidationError):
        SceneObject.model_validate({"shape": "hexagon", "color": "red", "box": [0, 0, 4, 4]})
    assert set(SHAPES) >= {"circle", "square", "star"}


# ------------------------------------------------------------------------------------------------------
# Views
# ------------------------------------------------------------------------------------------------------


def test_union_box_encloses_all_targets() -> None:
    for _, item in SCENES[:6]:
        ub = union_box(item)
        for t in item.targets:
            assert ub[0] <= t.box[0] and ub[1] <= t.box[1] and t.box[2] <= ub[2] and t.box[3] <= ub[3]
        assert any(t.box[0] == ub[0] for t in item.targets)


def test_crop_around_contains_the_box_and_varies_its_placement() -> None:
    rng = np.random.default_rng(0)
    for img, item in SCENES[:8]:
        box = item.targets[0].box
        offsets = set()
        for _ in range(5):
            crop, cb = crop_around(img, box, 128, rng)
            assert crop.size == (128, 128)
            x0, y0, x1, y1 = cb
            assert x1 - x0 == y1 - y0 >= 160
            assert 0 <= x0 <= box[0] and 0 <= y0 <= box[1] and box[2] <= x1 <= img.width and box[3] <= y1
            assert y1 <= img.height
            assert objects_in_view(item, cb)[0] == item.targets[0]
            offsets.add((box[0] - x0, box[1] - y0))
        assert len(offsets) > 1
    img, item = SCENES[1]
    native, cb = crop_around(img, union_box(item), None, rng, context=1.0, min_side=0)
    assert native.size == (cb[2] - cb[0],) * 2
    assert len(objects_in_view(item, cb)) == 2


def test_crop_around_is_capped_by_the_image_and_rejects_impossible_boxes() -> None:
    img = Image.new("RGB", (300, 200))
    rng = np.random.default_rng(1)
    _, cb = crop_around(img, (10, 10, 60, 60), None, rng)
    assert cb[2] - cb[0] == 200 and cb[1] == 0 and cb[3] == 200
    with pytest.raises(ValueError, match="no square crop"):
        crop_around(img, (0, 0, 250, 100), 64, rng)
    with pytest.raises(ValueError, match="not inside"):
        crop_around(img, (0, 0, 10, 201), 64, rng)


def test_random_crop_is_inside_the_image() -> None:
    img, _ = SCENES[0]
    rng = np.random.default_rng(2)
    for side in (64, 500, 10_000):
        crop, (x0, y0, x1, y1) = random_crop(img, rng, side, out_size=96)
        assert crop.size == (96, 96)
        assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
        assert x1 - x0 == y1 - y0 == min(side, img.width, img.height)


def test_objects_in_view_needs_half_of_a_target() -> None:
    _, item = SCENES[0]
    x0, y0, x1, y1 = item.targets[0].box
    w = x1 - x0
    assert objects_in_view(item, (x0 + w // 2, y0, x1 + 100, y1)) == [item.targets[0]]
    assert objects_in_view(item, (x0 + w // 2 + 1, y0, x1 + 100, y1)) == []
    assert objects_in_view(item, (x1, y0, x1 + 100, y1)) == []


# ------------------------------------------------------------------------------------------- the harder world
def test_a_plain_scene_is_byte_for_byte_what_it_always_was() -> None:
    """The world's own draws use a second random stream: adding worlds changed no plain scene (hashes of
    the images before the harder world existed)."""
    import hashlib

    before = {(7, 0): "762ff488b0bced99", (7, 1): "3b7aedc146c8554e", (3, 4): "98a58c0493b1ca4c"}
    for (seed, index), digest in before.items():
        img, item = generate_scene(seed, index)
        assert hashlib.sha256(img.tobytes()).hexdigest()[:16] == digest
        assert item.world == PLAIN and item.distractors == []


@pytest.mark.parametrize("index", range(6))
def test_a_hard_scene_asks_the_same_question_among_distractors(index: int) -> None:
    plain_img, plain = generate_scene(11, index)
    img, hard = generate_scene(11, index, world=HARD)
    again, _ = generate_scene(11, index, world=HARD)
    assert _png(img) == _png(again)  # deterministic per (seed, index, world)
    same = ("width", "height", "category", "question", "options", "answer", "targets")
    assert all(getattr(hard, k) == getattr(plain, k) for k in same) and hard.world == HARD
    lo, hi = HARD.distractors
    assert lo - 2 <= len(hard.distractors) <= hi  # a rare one may find no free place
    rgb = np.asarray(img).astype(int)
    for d in hard.distractors:
        assert all(  # clear of every target
            d.box[0] >= t.box[2] or t.box[0] >= d.box[2] or d.box[1] >= t.box[3] or t.box[1] >= d.box[3]
            for t in hard.targets
        )
    for t in hard.targets:  # the targets are drawn on top, in their colours
        cx, cy = (int(v) for v in t.center)
        assert np.abs(rgb[cy, cx] - np.array(COLORS[t.color])).max() <= 8 + 6  # jitter + luminance noise
    # the plain scene's background and clutter are gone: far more saturated pixels than the targets hold
    chroma = rgb.max(axis=2) - rgb.min(axis=2)
    plain_chroma = np.asarray(plain_img).astype(int).max(axis=2) - np.asarray(plain_img).astype(int).min(
        axis=2
    )
    assert (chroma > CLUTTER_MAX_CHROMA).sum() > 20 * (plain_chroma > CLUTTER_MAX_CHROMA).sum()


def test_hard_distractors_never_make_a_question_ambiguous_and_some_sit_in_the_close_up() -> None:
    kinds: set[str] = set()
    near = 0
    for index in range(24):
        _, item = generate_scene(5, index, world=HARD)
        named = {(t.color, t.shape) for t in item.targets}
        for d in item.distractors:
            kinds.add(d.kind)
            assert (d.color, d.shape) not in named
            if item.category == "attribute":
                assert not (d.shape == item.targets[0].shape and d.color in item.options)
        x0, y0, x1, y1 = union_box(item)
        reach = 4 * max(t.size for t in item.targets)
        near += any(
            x0 - reach <= d.center[0] <= x1 + reach and y0 - reach <= d.center[1] <= y1 + reach
            for d in item.distractors
        )
    assert kinds == {"same_color", "same_shape", "other"}
    assert near >= 20  # a close-up of the targets usually shows a distractor too


def test_an_ambiguous_distractor_is_refused_by_the_manifest_model() -> None:
    _, item = generate_scene(5, 0, world=HARD)
    target = item.targets[0]
    clash = Distractor(shape=target.shape, color=target.color, box=(0, 0, 10, 10), kind="other")
    with pytest.raises(ValidationError, match="ambiguous"):
        SceneItem.model_validate({**item.model_dump(), "distractors": [clash.model_dump()]})


def test_the_manifest_records_the_world_and_old_manifests_read_as_plain(tmp_path: Path) -> None:
    items = make_benchmark(tmp_path, n=2, seed=4, world=HARD)
    back = load_manifest(tmp_path)
    assert back == items and all(i.world.name == "hard" and i.distractors for i in back)
    old = json.loads(generate_scene(4, 0)[1].model_dump_json())
    del old["world"], old["distractors"]  # a manifest written before worlds existed
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    (item,) = load_manifest(tmp_path / "old.jsonl")
    assert item.world == PLAIN and item.distractors == []


def test_photo_backgrounds_need_scikit_image_and_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from foveate.synthetic.drawing import PHOTOS, photo_folder

    assert all((photo_folder() / name).is_file() for name in PHOTOS)  # bundled in the wheel: no download
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(ImportError, match=r"foveate\[bench\]"):
        photo_folder()


def test_unknown_worlds_and_bad_ranges_are_named() -> None:
    assert world_named("hard") == HARD
    with pytest.raises(ValueError, match="unknown world 'harder'"):
        world_named("harder")
    with pytest.raises(ValidationError, match="near_targets"):
        World(distractors=(1, 2), near_targets=(2, 3))


def test_a_list_of_worlds_is_read_in_order_and_a_bad_one_is_named() -> None:
    assert worlds_named("hard, plain") == [HARD, PLAIN]
    for text, reason in [
        ("plain,marsh", "unknown world 'marsh'"),
        ("", "names no world"),
        ("plain,plain", "twice"),
    ]:
        with pytest.raises(ValueError, match=reason):
            worlds_named(text)


def test_a_crop_holds_an_object_when_it_holds_its_centre() -> None:
    obj = SceneObject(shape="circle", color="red", box=(100, 100, 120, 120))  # centre (110, 110)
    assert box_holds(None, obj)  # the whole image holds everything
    assert box_holds((100, 100, 111, 111), obj)
    assert not box_holds((0, 0, 110, 200), obj)  # half-open: the right edge is outside
    assert not box_holds((111, 0, 300, 300), obj)
