"""Predicted visual-token counts equal what the real transformers processors produce; fit() respects caps.

Every count is checked against the real image processors / processors of transformers, built directly
from their classes, both with the reference checkpoints' settings and with small non-default ones, on
fixed edge cases (1x1, odd sizes, aspect ratios at the processors' limits, round-half-to-even points,
sizes at tile boundaries) plus seeded random sizes. To stay fast, the image-processor checks skip
rescale/normalise and resize with NEAREST: neither changes any size, only pixel values.
"""

from __future__ import annotations

import math
import random
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers import (
    CLIPImageProcessorPil,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    LlavaImageProcessorPil,
    LlavaProcessor,
    PaddleOCRVLProcessor,
    Qwen2VLImageProcessorPil,
    SmolVLMImageProcessorPil,
)

from foveate.errors import UnsupportedRequestError
from foveate.errors import VisualTokenCapError as ErrorsCapError
from foveate.testing.tiny_models import TINY_ARCHITECTURES, TinyArchitecture, make_tiny
from foveate.vlm.families import builtin_families
from foveate.vlm.families.idefics3 import IDEFICS3, SMOLVLM, Idefics3Tokens
from foveate.vlm.families.llava import LLAVA_1_5, LlavaTokens, ResizeRule
from foveate.vlm.families.qwen2_vl import QWEN2_VL, Qwen2VLTokens
from foveate.vlm.visual_tokens import VisualTokenCapError

read_rule = builtin_families().read_rule  # every family's reader: the processor names its family

FAST: dict[str, Any] = {"do_rescale": False, "do_normalize": False, "resample": Image.Resampling.NEAREST}
Size = tuple[int, int]


def _random_sizes(
    seed: int, n: int, *, max_side: int, max_ratio: float, max_area: int | None = None
) -> list[Size]:
    """``n`` sizes with log-uniform sides (many small, some large) within a ratio and an area limit."""
    rng = random.Random(seed)
    sizes: list[Size] = []
    while len(sizes) < n:
        h, w = (int(math.exp(rng.uniform(0.0, math.log(max_side)))) for _ in range(2))
        if max(h, w) / min(h, w) <= max_ratio and (max_area is None or h * w <= max_area):
            sizes.append((h, w))
    return sizes


def _image(size: Size) -> Image.Image:
    height, width = size
    return Image.new("RGB", (width, height), (120, 60, 200))


@pytest.fixture(scope="module")
def tiny() -> dict[str, tuple[Any, Any]]:
    """The tiny (model, processor) pairs; their tokenizers drive the full-processor checks."""
    return {arch: make_tiny(arch) for arch in TINY_ARCHITECTURES}


def _count(processor: Any, text: str, image: Image.Image, **kwargs: Any) -> int:
    ids = processor(images=[image], text=[text], **kwargs)["input_ids"][0]
    return sum(1 for token in ids if token == processor.image_token_id)


# --------------------------------------------------------------------------------------------- Qwen2-VL

QWEN_EDGES: list[Size] = [
    (1, 1), (1, 2), (2, 1), (27, 29), (28, 28), (42, 42), (70, 70), (70, 98), (55, 57), (14, 2800),
    (2800, 14), (20, 3999), (3999, 20), (4000, 300), (300, 4000), (1001, 1499), (1, 200), (199, 1),
]  # fmt: skip

QWEN_CONFIGS: dict[str, dict[str, Any]] = {
    "qwen2-vl-checkpoint": {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "merge_size": 2},
    "class-defaults": {},
    "small-cap": {"min_pixels": 100, "max_pixels": 28 * 28 * 16, "patch_size": 14, "merge_size": 2},
    "qwen3-like": {"min_pixels": 1024, "max_pixels": 32 * 32 * 200, "patch_size": 16, "merge_size": 2},
    "no-merge": {"min_pixels": 8 * 8 * 9, "max_pixels": 8 * 8 * 500, "patch_size": 8, "merge_size": 1},
}


@pytest.mark.parametrize("name", list(QWEN_CONFIGS))
def test_qwen_matches_image_grid(name: str) -> None:
    processor: Any = Qwen2VLImageProcessorPil(**QWEN_CONFIGS[name])
    spec = Qwen2VLTokens(
        patch_size=processor.patch_size,
        merge_size=processor.merge_size,
        min_pixels=processor.size.shortest_edge,
        max_pixels=processor.size.longest_edge,
    )
    # Large areas are cheap only when max_pixels keeps the output small.
    max_area = 1_500_000 if processor.size.longest_edge > 100_000 else None
    sizes = QWEN_EDGES + _random_sizes(
        zlib.crc32(name.encode()), 24, max_side=4000, max_ratio=200, max_area=max_area
    )
    if max_area is None:
        sizes += [(4000, 4000), (3000, 4000), (4000, 2999)]
    for size in sizes:
        out = processor(_image(size), **FAST)
        t, gh, gw = (int(x) for x in out["image_grid_thw"][0])
        merge = processor.merge_size
        assert spec.tokens_for(*size) == t * gh * gw // merge**2, size
        assert spec.processed_size(*size) == (gh * processor.patch_size, gw * processor.patch_size), size
        assert out["pixel_values"].shape[0] == gh * gw  # the grid really is what was patchified
        assert spec.tokens_for(*size) == processor.get_number_of_image_patches(*size) // merge**2


def test_qwen_refuses_what_the_processor_refuses() -> None:
    processor: Any = Qwen2VLImageProcessorPil()
    for size in [(1, 201), (3000, 14)]:
        with pytest.raises(ValueError, match="aspect ratio"):
            processor(_image(size), **FAST)
        with pytest.raises(ValueError, match="aspect ratio"):
            QWEN2_VL.tokens_for(*size)


def test_qwen_without_resize_uses_the_image_as_is() -> None:
    processor: Any = Qwen2VLImageProcessorPil(do_resize=False)
    spec = Qwen2VLTokens(do_resize=False)
    for size in [(28, 28), (56, 280), (308, 84)]:
        grid = processor(_image(size), **FAST)["image_grid_thw"][0]
        assert spec.tokens_for(*size) == int(grid.prod()) // 4
    with pytest.raises(ValueError, match="multiples of 28"):
        spec.tokens_for(30, 28)
    assert spec.fit(300, 400, 10_000) == (280, 392)  # snapped down to multiples of 28
    assert spec.fit(300, 400, 100) == (252, 308)  # 9 x 11 = 99 tokens


def test_qwen_full_processor(tiny: dict[str, tuple[Any, Any]]) -> None:
    """Through a whole processor: placeholder tokens in input_ids, Qwen2-VL's real settings."""
    tokenizer = tiny["qwen2_vl"][1].tokenizer
    image_processor: Any = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056)
    processor = PaddleOCRVLProcessor(image_processor=image_processor, tokenizer=tokenizer)
    spec = read_rule(processor)
    assert spec == QWEN2_VL
    for size in [(1, 1), (70, 70), (480, 640), (1080, 1920), (14, 2800)]:
        assert _count(processor, "<|image_pad|> what?", _image(size)) == spec.tokens_for(*size), size


# ---------------------------------------------------------------------------------------- Idefics3

IDEFICS_EDGES: list[Size] = [
    (1, 1), (1, 4000), (4000, 1), (2, 3), (17, 13), (364, 364), (365, 364), (728, 729), (729, 728),
    (1456, 1456), (1457, 1), (3000, 4000), (4000, 2999), (999, 1000), (1000, 999), (301, 400),
    (153, 255), (255, 153), (306, 510), (1000, 600),
]  # fmt: skip

IDEFICS_CONFIGS: dict[str, tuple[type, dict[str, Any]]] = {
    "idefics3-checkpoint": (Idefics3ImageProcessorPil, {}),
    "smolvlm-checkpoint": (
        SmolVLMImageProcessorPil,
        {"size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512}},
    ),
    # longest edge not a multiple of the tile: the short side can gain a tile row (resize_for_vision_encoder)
    "off-multiple": (
        Idefics3ImageProcessorPil,
        {"size": {"longest_edge": 400}, "max_image_size": {"longest_edge": 364}},
    ),
    "small-tiles": (
        Idefics3ImageProcessorPil,
        {"size": {"longest_edge": 301}, "max_image_size": {"longest_edge": 64}},
    ),
    # odd tile: the odd-to-even bump of the short side can push it past a tile boundary (153 -> 154)
    "odd-tile": (
        SmolVLMImageProcessorPil,
        {"size": {"longest_edge": 255}, "max_image_size": {"longest_edge": 51}},
    ),
    "no-splitting": (Idefics3ImageProcessorPil, {"do_image_splitting": False}),
    "no-resize": (
        Idefics3ImageProcessorPil,
        {"do_resize": False, "max_image_size": {"longest_edge": 256}},
    ),
}


@pytest.mark.parametrize("name", list(IDEFICS_CONFIGS))
def test_idefics3_matches_rows_cols_and_tiles(name: str) -> None:
    klass, kwargs = IDEFICS_CONFIGS[name]
    processor: Any = klass(**kwargs)
    seq = 7
    tile = processor.max_image_size["longest_edge"]
    spec = Idefics3Tokens(
        longest_edge=processor.size.longest_edge or 1456,
        max_image_size=tile,
        image_seq_len=seq,
        do_image_splitting=processor.do_image_splitting,
        do_resize=processor.do_resize,
    )
    no_resize = not processor.do_resize
    edges = [s for s in IDEFICS_EDGES if max(s) <= 1500] if no_resize else IDEFICS_EDGES
    random_sizes = _random_sizes(
        zlib.crc32(name.encode()), 22, max_side=1500 if no_resize else 4000, max_ratio=4000
    )
    for size in edges + random_sizes:
        out = processor(_image(size), return_row_col_info=True, **FAST)
        rows, cols = out["rows"][0][0], out["cols"][0][0]
        frames = out["pixel_values"].shape[1]
        assert spec.tile_grid(*size) == (rows, cols), size
        assert frames == (rows * cols + 1 if rows or cols else 1), size
        assert spec.tokens_for(*size) == frames * seq, size
        if rows or cols:
            assert spec.processed_size(*size) == (rows * tile, cols * tile), size
        else:
            assert spec.processed_size(*size) == tuple(out["pixel_values"].shape[-2:]) == (tile, tile), size


def test_idefics3_caps_the_long_side_at_4096() -> None:
    """A longest_edge above 4096 is clamped back to 4096 (thin images keep this test light)."""
    processor: Any = Idefics3ImageProcessorPil(
        size={"longest_edge": 4500}, max_image_size={"longest_edge": 700}
    )
    spec = Idefics3Tokens(longest_edge=4500, max_image_size=700, image_seq_len=3)
    for size in [(10, 4500), (4500, 12), (1, 3000), (30, 5000), (3, 4096)]:
        out = processor(_image(size), return_row_col_info=True, **FAST)
        assert spec.tile_grid(*size) == (out["rows"][0][0], out["cols"][0][0]), size
        assert max(spec.tile_grid(*size)) == 6  # ceil(4096 / 700), not ceil(4500 / 700) = 7


def test_idefics3_full_processor(tiny: dict[str, tuple[Any, Any]]) -> None:
    """Through Idefics3Processor (also with SmolVLM's image processor): <image> tokens in input_ids."""
    tokenizer = tiny["idefics3"][1].tokenizer
    pairs: list[tuple[Any, int]] = [
        (Idefics3ImageProcessorPil(), 169),
        (SmolVLMImageProcessorPil(size={"longest_edge": 2048}, max_image_size={"longest_edge": 512}), 64),
    ]
    for image_processor, seq in pairs:
        processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer, image_seq_len=seq)
        spec = read_rule(processor)
        assert spec == (IDEFICS3 if seq == 169 else SMOLVLM)
        for size in [(1, 1), (300, 400), (1, 4000), (2000, 700)]:
            count = _count(processor, "<image>What is it?", _image(size), **FAST)
            assert count == spec.tokens_for(*size), size


def test_idefics3_processor_level_overrides_are_read(tiny: dict[str, tuple[Any, Any]]) -> None:
    """A processor's images_kwargs defaults win over its image processor's attributes, in both."""
    processor: Any = Idefics3Processor(
        image_processor=Idefics3ImageProcessorPil(), tokenizer=tiny["idefics3"][1].tokenizer, image_seq_len=9
    )
    processor.images_kwargs = {**processor.images_kwargs, "do_image_splitting": False}
    spec = read_rule(processor)
    assert not spec.do_image_splitting
    assert _count(processor, "<image>", _image((900, 1200)), **FAST) == spec.tokens_for(900, 1200) == 9


# ---------------------------------------------------------------------------------------------- LLaVA

LLAVA_EDGES: list[Size] = [(1, 1), (1, 20), (20, 1), (7, 13), (336, 336), (337, 335), (4000, 3000), (21, 400)]


def _llava(tokenizer: Any, image_processor: Any, patch: int, strategy: str | None = "default") -> Any:
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy=strategy,
        num_additional_image_tokens=1,
    )


LLAVA_CONFIGS: dict[str, tuple[Any, int, str | None]] = {
    "llava-1.5": (lambda: CLIPImageProcessorPil(size=336, crop_size=336), 14, "default"),
    "full-strategy": (lambda: CLIPImageProcessorPil(size=336, crop_size=336), 14, "full"),
    "no-strategy": (lambda: CLIPImageProcessorPil(size=224, crop_size=224), 16, None),
    "squash": (
        lambda: CLIPImageProcessorPil(size={"height": 64, "width": 96}, do_center_crop=False),
        8,
        "default",
    ),
    "shortest-edge-no-crop": (
        lambda: CLIPImageProcessorPil(size={"shortest_edge": 30}, do_center_crop=False),
        7,
        "default",
    ),
    "shortest-and-longest": (
        lambda: CLIPImageProcessorPil(size={"shortest_edge": 40, "longest_edge": 90}, do_center_crop=False),
        8,
        "default",
    ),
    "max-height-width": (
        lambda: CLIPImageProcessorPil(size={"max_height": 50, "max_width": 70}, do_center_crop=False),
        6,
        "default",
    ),
    "no-resize": (lambda: CLIPImageProcessorPil(do_resize=False, do_center_crop=False), 16, "default"),
    "pad-to-square": (
        lambda: LlavaImageProcessorPil(do_pad=True, size={"shortest_edge": 48}, do_center_crop=False),
        8,
        "default",
    ),
    "pad-after-crop": (
        lambda: CLIPImageProcessorPil(
            size=40, crop_size={"height": 40, "width": 30}, do_pad=True, pad_size={"height": 48, "width": 48}
        ),
        8,
        "default",
    ),
}


@pytest.mark.parametrize("name", list(LLAVA_CONFIGS))
def test_llava_full_processor(name: str, tiny: dict[str, tuple[Any, Any]]) -> None:
    make_image_processor, patch, strategy = LLAVA_CONFIGS[name]
    processor = _llava(tiny["llava"][1].tokenizer, make_image_processor(), patch, strategy)
    spec = read_rule(processor)
    max_side = 600 if name == "no-resize" else 4000
    sizes = [s for s in LLAVA_EDGES if max(s) <= max_side] + _random_sizes(
        zlib.crc32(name.encode()), 20, max_side=max_side, max_ratio=20
    )
    for size in sizes:
        out = processor(
            images=[_image(size)], text=["USER: <image> hi"], do_rescale=False, do_normalize=False
        )
        count = sum(1 for token in out["input_ids"][0] if token == processor.image_token_id)
        assert spec.tokens_for(*size) == count, size
        assert spec.processed_size(*size) == tuple(out["pixel_values"][0].shape[-2:]), size
    if name == "llava-1.5":
        assert spec == LLAVA_1_5 and LLAVA_1_5.tokens_for(1, 1) == 576
    if name == "full-strategy":
        assert spec.tokens_for(10, 10) == 577


def test_llava_reads_missing_settings_from_config(tiny: dict[str, tuple[Any, Any]]) -> None:
    model, processor = tiny["llava"]
    processor.patch_size = None
    del processor.vision_feature_select_strategy
    spec = read_rule(processor, model.config)
    assert spec.patch_size == model.config.vision_config.patch_size
    assert spec.vision_feature_select_strategy == model.config.vision_feature_select_strategy
    with pytest.raises(ValueError, match="patch_size"):
        read_rule(processor)


# ---------------------------------------------------------------------------- read_rule


@pytest.mark.parametrize("arch", TINY_ARCHITECTURES)
def test_tiny_models_end_to_end(arch: TinyArchitecture) -> None:
    """The project's own tiny models: the spec read off their processor predicts their prompts exactly."""
    model, processor = make_tiny(arch)  # fresh: other tests mutate the shared ones
    spec = read_rule(processor, model.config)
    assert spec.family == arch
    token = {"llava": "<image>", "qwen2_vl": "<|image_pad|>", "idefics3": "<image>"}[arch]
    sizes = [(1, 1), (300, 400), (90, 60), (1000, 3000), *_random_sizes(7, 6, max_side=2000, max_ratio=50)]
    for size in sizes:
        assert _count(processor, f"{token} Describe.", _image(size)) == spec.tokens_for(*size), size


def test_unsupported_processors_are_named() -> None:
    class FancyProcessor:
        image_processor = CLIPImageProcessorPil()

    with pytest.raises(ValueError, match="FancyProcessor"):
        read_rule(FancyProcessor())

    class NoImages:
        pass

    with pytest.raises(ValueError, match="NoImages"):
        read_rule(NoImages())

    class LlavaLike(LlavaProcessor):  # a plain subclass keeps LlavaProcessor's counting: accepted
        def __init__(self, image_processor: Any) -> None:
            self.image_processor = image_processor
            self.patch_size, self.num_additional_image_tokens = 14, 1
            self.vision_feature_select_strategy = "default"

    assert read_rule(LlavaLike(CLIPImageProcessorPil(size=336, crop_size=336))) == LLAVA_1_5
    with pytest.raises(ValueError, match="Qwen2VLImageProcessorPil"):  # geometry it does not know
        read_rule(LlavaLike(Qwen2VLImageProcessorPil()))

    class QwenOverride(PaddleOCRVLProcessor):  # overrides the count: refused
        def __init__(self) -> None:
            self.image_processor = Qwen2VLImageProcessorPil()

        def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs: Any) -> str:
            return ""

    with pytest.raises(ValueError, match="QwenOverride"):
        read_rule(QwenOverride())


def test_spec_validation() -> None:
    with pytest.raises(UnsupportedRequestError, match="pixtral"):
        builtin_families().get("pixtral")
    with pytest.raises(ValueError, match="patch_size"):
        LlavaTokens(patch_size=0)
    with pytest.raises(ValueError, match="resize rule"):
        ResizeRule()
    for bad in [(0, 5), (5, -1)]:
        with pytest.raises(ValueError, match="at least 1x1"):
            QWEN2_VL.tokens_for(*bad)
    with pytest.raises(ValueError, match="integers"):
        QWEN2_VL.tokens_for(10.5, 3)  # type: ignore[arg-type]
    assert not hasattr(QWEN2_VL, "tile_grid")  # a fact of Idefics3's rule alone


# -------------------------------------------------------------------------------------------------- fit

FIT_SPECS = {
    "qwen2-vl": QWEN2_VL,
    "qwen-small": Qwen2VLTokens(min_pixels=100, max_pixels=28 * 28 * 16),
    "qwen3-like": Qwen2VLTokens(patch_size=16, min_pixels=1024, max_pixels=32 * 32 * 200),
    "llava-1.5": LLAVA_1_5,
    "llava-no-resize": LlavaTokens(patch_size=16, do_resize=False, crop_size=None),
    "llava-max-hw": LlavaTokens(patch_size=6, resize=ResizeRule(max_height=50, max_width=70), crop_size=None),
    "idefics3": IDEFICS3,
    "idefics3-no-resize": Idefics3Tokens(do_resize=False, max_image_size=256, image_seq_len=64),
    "smolvlm": SMOLVLM,
}


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(FIT_SPECS)),
    height=st.integers(1, 6000),
    width=st.integers(1, 6000),
    cap=st.one_of(st.integers(1, 100), st.integers(1, 3000), st.integers(1, 20000)),
)
def test_fit_respects_cap_and_aspect(name: str, height: int, width: int, cap: int) -> None:
    spec = FIT_SPECS[name]
    if spec.family == "qwen2_vl" and max(height, width) / min(height, width) > 200:
        with pytest.raises(ValueError, match="aspect ratio"):
            spec.fit(height, width, cap)
        return
    try:
        fitted = spec.fit(height, width, cap)
    except VisualTokenCapError as err:
        assert isinstance(err, ValueError) and isinstance(err, ErrorsCapError)
        assert repr(spec.family) in str(err) and f"cap of {cap} " in str(err)
        assert err.needed > cap and err.remaining == cap
        assert spec.tokens_for(height, width) >= err.needed
        return
    fh, fw = fitted
    assert spec.tokens_for(fh, fw) <= cap
    assert fh <= height and fw <= width  # never upscales
    if fitted == (height, width):
        return
    long, short = max(height, width), min(height, width)
    new_long, new_short = (fh, fw) if height >= width else (fw, fh)
    if spec.family == "qwen2_vl" and not spec.do_resize:
        return  # snapped to the patch grid instead
    assert new_short == -(-short * new_long // long)  # aspect ratio kept to within one pixel
    assert new_short * long >= short * new_long  # ... and never made more extreme
    assert short * new_long >= long  # the exact short side is still at least 1 px
    # locally largest: one more pixel on the long side would not fit
    bigger_short = -(-short * (new_long + 1) // long)
    bigger = (new_long + 1, bigger_short) if height >= width else (bigger_short, new_long + 1)
    assert spec.tokens_for(*bigger) > cap


def test_fit_examples() -> None:
    assert QWEN2_VL.fit(300, 400, 10_000) == (300, 400)  # fits already: untouched, even if tiny
    h, w = QWEN2_VL.fit(3000, 4000, 256)
    assert QWEN2_VL.tokens_for(h, w) <= 256 < QWEN2_VL.tokens_for(h + 1, w + 2)
    assert abs(w / h - 4 / 3) < 0.01
    # 1:200 costs Qwen2-VL 21-29 tokens at any size (min_pixels); the short side stays >= 1 px
    h, w = QWEN2_VL.fit(10, 2000, 24)
    assert QWEN2_VL.tokens_for(h, w) <= 24 and h == -(-10 * w // 2000) and w >= 200
    with pytest.raises(VisualTokenCapError, match="is 21"):
        QWEN2_VL.fit(10, 2000, 20)
    with pytest.raises(VisualTokenCapError, match=r"cap of 575 .*'llava'.* is 576 .*same count"):
        LLAVA_1_5.fit(300, 400, 575)
    assert LLAVA_1_5.fit(300, 400, 576) == (300, 400)
    with pytest.raises(VisualTokenCapError, match=r"cap of 3 .*'qwen2_vl'.* is 4"):
        QWEN2_VL.fit(10, 10, 3)
    with pytest.raises(VisualTokenCapError, match=r"'idefics3'.*1456 px longest edge"):
        IDEFICS3.fit(300, 400, 1000)
    with pytest.raises(ValueError, match="max_tokens"):
        QWEN2_VL.fit(300, 400, 0)


def test_fitted_images_meet_the_cap_in_the_real_processor() -> None:
    processor: Any = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056)
    for size, cap in [((2000, 3000), 300), ((4000, 90), 64), ((123, 4567), 50), ((1500, 1499), 1)]:
        try:
            fitted = QWEN2_VL.fit(*size, cap)
        except VisualTokenCapError:
            assert cap < 4
            continue
        grid = processor(_image(fitted), **FAST)["image_grid_thw"][0]
        assert int(grid.prod()) // 4 <= cap


def test_idefics3_follows_the_pipeline_not_the_processors_own_helper() -> None:
    """transformers' ``get_number_of_image_patches`` rounds the short side up on its own, but the real resize
    derives it from the rounded-up long side, which can add a tile row. The spec follows the real resize."""
    processor: Any = Idefics3ImageProcessorPil(
        size={"longest_edge": 400}, max_image_size={"longest_edge": 364}
    )
    spec = Idefics3Tokens(longest_edge=400, max_image_size=364, image_seq_len=1)
    out = processor(_image((300, 400)), return_row_col_info=True, **FAST)
    assert (out["rows"][0][0], out["cols"][0][0]) == spec.tile_grid(300, 400) == (2, 2)
    assert processor.get_number_of_image_patches(300, 400) == (3, 1, 2)  # (tiles + 1, rows, cols)
