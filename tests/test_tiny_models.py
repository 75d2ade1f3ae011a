"""The tiny random VLM fixtures build, reload offline, and run the real transformers code paths.

Why these tests: every other model-level test and the demo stand on these folders. If a reload silently
re-initialised some weights, a chat template dropped the image placeholder, or left-padded batches leaked
padding into the answer, everything downstream would test noise against noise without noticing.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from foveate.testing.tiny_models import (
    TINY_ARCHITECTURES,
    TinyArchitecture,
    build_tiny,
    build_tiny_idefics3,
    build_tiny_llava,
    build_tiny_qwen2vl,
    make_tiny,
)

IMAGE_TOKEN = {"llava": "<image>", "qwen2_vl": "<|image_pad|>", "idefics3": "<image>"}
GENERATION_PROMPT = {"llava": "ASSISTANT:", "qwen2_vl": "<|im_start|>assistant\n", "idefics3": "Assistant:"}


def _image(width: int, height: int, seed: int = 0) -> Image.Image:
    """A deterministic noise image (a flat colour would hide pixel-value mix-ups)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def _conversation(question: str, system: str | None = None) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]})
    return messages


def _prompt(processor: Any, question: str, system: str | None = None) -> str:
    text = processor.apply_chat_template(
        _conversation(question, system), add_generation_prompt=True, tokenize=False
    )
    assert isinstance(text, str)
    return text


@pytest.fixture(scope="module", params=TINY_ARCHITECTURES)
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    arch: TinyArchitecture = request.param
    return arch, build_tiny(arch, tmp_path_factory.mktemp(arch), seed=0)


@pytest.fixture(scope="module")
def loaded(built: tuple[str, Path]) -> tuple[str, Any, Any]:
    arch, path = built
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    return arch, processor, model


def test_folder_contents_and_config(built: tuple[str, Path], loaded: tuple[str, Any, Any]) -> None:
    arch, path = built
    _, processor, model = loaded
    assert (path / "model.safetensors").is_file()
    assert not list(path.glob("*.bin"))
    tokenizer = processor.tokenizer
    text_config = model.config.get_text_config()

    assert text_config.vocab_size == len(tokenizer)
    assert text_config.hidden_size // text_config.num_attention_heads >= 32
    assert sum(p.numel() for p in model.parameters()) < 5_000_000

    image_token_id = getattr(model.config, "image_token_id", None) or model.config.image_token_index
    assert image_token_id == tokenizer.convert_tokens_to_ids(IMAGE_TOKEN[arch])
    assert processor.image_token == IMAGE_TOKEN[arch]
    assert processor.image_token_id == image_token_id
    assert tokenizer.padding_side == "left"
    assert (
        tokenizer.pad_token_id is not None and model.generation_config.pad_token_id == tokenizer.pad_token_id
    )

    for word in ("Yes", "No", "A", "B", "C", "D"):
        assert len(tokenizer.encode(word, add_special_tokens=False)) == 1, word
        assert len(tokenizer.encode(f" {word}", add_special_tokens=False)) == 1, word
    # Byte-level BPE: arbitrary text round-trips, nothing maps to <unk>.
    text = "Zoom into the top-left corner: is the sign's text 'STOP' (yes/no)? Ünïcödé ok"
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text

    if arch == "qwen2_vl":
        rope = text_config.rope_parameters
        assert sum(rope["mrope_section"]) == text_config.hidden_size // text_config.num_attention_heads // 2
        for token in ("<|vision_start|>", "<|vision_end|>"):
            assert token in tokenizer.all_special_tokens
    if arch == "idefics3":
        assert processor.image_processor.do_image_splitting


def test_chat_template_renders_roles_and_image(loaded: tuple[str, Any, Any]) -> None:
    arch, processor, _ = loaded
    text = _prompt(processor, "What color is it?", system="Be brief.")
    assert text.count(IMAGE_TOKEN[arch]) == 1
    assert "Be brief." in text and "What color is it?" in text
    expected_tail = {"llava": "ASSISTANT:", "qwen2_vl": "<|im_start|>assistant\n", "idefics3": "Assistant:"}[
        arch
    ]
    assert text.endswith(expected_tail)
    if arch == "qwen2_vl":
        assert "<|vision_start|><|image_pad|><|vision_end|>" in text
    # Plain-string content and a finished assistant turn are accepted too.
    history = [
        {"role": "user", "content": "Is it red?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Yes"}]},
        {"role": "user", "content": "Sure?"},
    ]
    rendered = processor.apply_chat_template(history, add_generation_prompt=False, tokenize=False)
    assert "Is it red?" in rendered and "Yes" in rendered and not rendered.endswith(expected_tail)
    assert processor.tokenizer.chat_template


def test_reload_gives_identical_logits(built: tuple[str, Path], loaded: tuple[str, Any, Any]) -> None:
    arch, _ = built
    _, processor, model = loaded
    ref_model, ref_processor = make_tiny(arch, seed=0)  # type: ignore[arg-type]
    other_model, _ = make_tiny(arch, seed=1)  # type: ignore[arg-type]

    image = _image(96, 72)
    text = _prompt(processor, "Is the object on the left? Answer Yes or No.")
    assert text == _prompt(ref_processor, "Is the object on the left? Answer Yes or No.")
    inputs = processor(text=text, images=[image], return_tensors="pt")
    ref_inputs = ref_processor(text=text, images=[image], return_tensors="pt")
    assert sorted(inputs.keys()) == sorted(ref_inputs.keys())
    for key in inputs:
        assert torch.equal(inputs[key], ref_inputs[key]), key

    with torch.no_grad():
        logits = model(**inputs).logits
        ref_logits = ref_model(**inputs).logits
        other_logits = other_model(**inputs).logits
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(logits, ref_logits, rtol=0, atol=0)
    # The comparison can fail: another seed gives other weights, hence other logits.
    assert not torch.allclose(logits, other_logits)


def test_generate_single_image(loaded: tuple[str, Any, Any]) -> None:
    arch, processor, model = loaded
    text = _prompt(processor, "Describe the image.")
    inputs = processor(text=text, images=[_image(120, 80)], return_tensors="pt")
    n_image_tokens = int((inputs["input_ids"] == processor.image_token_id).sum())
    expected = {
        "llava": 64,  # (64 / 8) ** 2 patches, CLS dropped
        "qwen2_vl": int(inputs.get("image_grid_thw", torch.zeros(1, 3)).prod()) // 4,
        "idefics3": 16 * (4 * 3 + 1),  # 256x171 -> 4x3 tiles of 64 px + global view, 16 tokens each
    }[arch]
    assert n_image_tokens == expected
    out = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    prompt_len = inputs["input_ids"].shape[1]
    assert out.shape[0] == 1 and prompt_len < out.shape[1] <= prompt_len + 3
    assert torch.equal(out[:, :prompt_len], inputs["input_ids"])
    assert isinstance(processor.batch_decode(out[:, prompt_len:], skip_special_tokens=True)[0], str)


def test_generate_batch_of_two_image_sizes(loaded: tuple[str, Any, Any]) -> None:
    _, processor, model = loaded
    texts = [
        _prompt(processor, "What is the color of the small object in the top left corner of the image?"),
        _prompt(processor, "Count."),
    ]
    images = [_image(150, 60, seed=1), _image(40, 100, seed=2)]
    batch = processor(text=texts, images=images, padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[0] == 2
    assert batch["attention_mask"][1, 0] == 0  # the shorter prompt is left-padded
    assert batch["input_ids"][1, 0] == processor.tokenizer.pad_token_id

    with torch.no_grad():
        batch_last = model(**batch).logits[:, -1]
        for i in range(2):
            single = processor(text=texts[i], images=[images[i]], return_tensors="pt")
            single_last = model(**single).logits[0, -1]
            # Left padding must not change the next-token distribution.
            torch.testing.assert_close(batch_last[i], single_last, rtol=1e-4, atol=1e-4)

    out = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert out.shape[0] == 2
    assert out.shape[1] <= batch["input_ids"].shape[1] + 3


@pytest.mark.parametrize(
    ("arch", "builder"),
    [("llava", build_tiny_llava), ("qwen2_vl", build_tiny_qwen2vl), ("idefics3", build_tiny_idefics3)],
)
def test_builders_are_deterministic_per_seed(arch: str, builder: Any, tmp_path: Path) -> None:
    first = builder(tmp_path / "a", seed=3)
    second = build_tiny(arch, tmp_path / "b", seed=3)  # type: ignore[arg-type]
    assert first == tmp_path / "a"
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_unknown_architecture_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown tiny architecture"):
        make_tiny("blip", seed=0)  # type: ignore[arg-type]
