"""Tiny random-weight vision-language models of every supported family, for tests and benchmarks.

Why this module exists: foveate drives a *local* VLM, and its tests and demo must run on a laptop CPU, with
no network and no downloaded weights. The real checkpoints are gigabytes, so instead we build, from a config,
structurally faithful miniatures of the three architecture families foveate supports (LLaVA, Qwen2-VL,
Idefics3/SmolVLM). Their answers are noise, but every code path that matters -- chat templates, image
placeholder expansion, image tiling, dynamic resolution, left-padded batching, ``generate`` -- is the real
``transformers`` code, exercised on the real model classes.

Each ``build_*`` function writes a folder that reloads with plain ``AutoProcessor.from_pretrained`` and
``AutoModelForImageTextToText.from_pretrained`` (safetensors, offline). Everything is deterministic per seed:
the tokenizer is trained locally on a generated corpus (no randomness involved) and the weights are
initialised after ``torch.manual_seed(seed)``.

Design notes:

* The tokenizer is a byte-level BPE (no unknown characters ever), trained on a tiny corpus built from the
  words prompts commonly use, so that e.g. ``"Yes"``, ``" Yes"``, ``"A"`` and ``" A"`` are single tokens --
  tests and the demo score multiple-choice / yes-no answers by single-token logits.
* Sizes keep ``head_dim == 32`` (so a CPU vLLM build could serve the folders later) while staying well under
  one million parameters, so a forward pass takes milliseconds.
* No torchvision is needed: the ``*Pil`` image-processor variants are used. ``Qwen2VLProcessor`` cannot be
  built or reloaded without torchvision in transformers 5 (it insists on a video processor, whose base class
  only exists with torchvision), so the Qwen2-VL folder uses ``PaddleOCRVLProcessor``: a stock transformers
  processor that is exactly Qwen2-VL's image path (``<|image_pad|>`` expanded to ``grid_t*grid_h*grid_w /
  merge_size**2`` tokens) without the video half, and that ``AutoProcessor`` reloads in any process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypedDict, get_args

import torch
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    Idefics3VisionConfig,
    PaddleOCRVLProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessorPil,
)

from foveate.tiny_vlm.architecture import (
    CHAT_IS_IMAGE,
    CHAT_PARTS,
    HEAD_DIM,
    HEADS,
    HIDDEN,
    INTERMEDIATE,
    LAYERS,
    MAX_POSITIONS,
    LlavaShape,
    build_tiny_llava,
    build_tokenizer,
    finalise,
    llama_text_config,
    make_llava,
    save_model,
    token_id,
)

__all__ = [
    "TINY_ARCHITECTURES",
    "LlavaShape",
    "TinyArchitecture",
    "build_tiny",
    "build_tiny_idefics3",
    "build_tiny_llava",
    "build_tiny_qwen2vl",
    "build_tiny_qwen25vl",
    "make_llava",
    "make_tiny",
    "make_tiny_qwen25vl",
]

TinyArchitecture = Literal["llava", "qwen2_vl", "idefics3"]
TINY_ARCHITECTURES: tuple[TinyArchitecture, ...] = get_args(TinyArchitecture)

# Qwen2-VL: dynamic resolution. 14 px patches, 2x2 merge -> one token per 28x28 px, 4..64 tokens per image.
_QWEN_PATCH = 14
_QWEN_MERGE = 2
_QWEN_TEMPORAL_PATCH = 2
_QWEN_MIN_PIXELS = 56 * 56
_QWEN_MAX_PIXELS = 28 * 28 * 64
_QWEN_MROPE_SECTION = [4, 6, 6]  # temporal, height, width; must sum to head_dim / 2

# Idefics3: 64 px tiles of 8 px patches (64 patches), pixel-shuffle by 2 -> 16 tokens per tile; images are
# resized to a 256 px longest edge and split into up to 4x4 tiles plus one global view.
_IDEFICS3_TILE = 64
_IDEFICS3_PATCH = 8
_IDEFICS3_SCALE_FACTOR = 2
_IDEFICS3_LONGEST_EDGE = 4 * _IDEFICS3_TILE
_IDEFICS3_IMAGE_SEQ_LEN = (_IDEFICS3_TILE // _IDEFICS3_PATCH) ** 2 // _IDEFICS3_SCALE_FACTOR**2
_IDEFICS3_MAX_GRID = 6  # the processor looks up <row_i_col_j> for i, j in 1..6


# Qwen2-VL style:
# "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Q<|im_end|>\n<|im_start|>assistant\n"
_QWEN2VL_CHAT_TEMPLATE = (
    "{%- for message in messages -%}" + CHAT_PARTS + "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- for part in parts -%}"
    "{%- if " + CHAT_IS_IMAGE + " -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

# Idefics3 style: "<|begin_of_text|>User:<image>Q<end_of_utterance>\nAssistant:"
_IDEFICS3_CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}" + CHAT_PARTS + "{{- message['role'] | capitalize -}}"
    "{%- if parts and " + CHAT_IS_IMAGE.replace("part[", "parts[0][") + " -%}{{- ':' -}}"
    "{%- else -%}{{- ': ' -}}{%- endif -%}"
    "{%- for part in parts -%}"
    "{%- if " + CHAT_IS_IMAGE + " -%}{{- '<image>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{{- '<end_of_utterance>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)


def _make_llava(seed: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    return make_llava(seed)


def _qwen_tokenizer() -> PreTrainedTokenizerFast:
    """The tiny tokenizer shared by the Qwen2-VL and Qwen2.5-VL builds (the same special tokens)."""
    return build_tokenizer(
        special_tokens=[
            "<|endoftext|>",
            "<|im_start|>",
            "<|im_end|>",
            "<|vision_start|>",
            "<|vision_end|>",
            "<|image_pad|>",
            "<|video_pad|>",
            "<unk>",
        ],
        named_tokens={
            "image_token": "<|image_pad|>",
            "video_token": "<|video_pad|>",
            "vision_start_token": "<|vision_start|>",
            "vision_end_token": "<|vision_end|>",
        },
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<unk>",
        chat_template=_QWEN2VL_CHAT_TEMPLATE,
    )


def _qwen_text_config(tokenizer: PreTrainedTokenizerFast) -> dict[str, Any]:
    """The tiny Qwen2 language model with M-RoPE, shared by the Qwen2-VL and Qwen2.5-VL builds."""
    if sum(_QWEN_MROPE_SECTION) != HEAD_DIM // 2:
        raise AssertionError("mrope_section must sum to head_dim / 2")
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": HEADS,
        "max_position_embeddings": MAX_POSITIONS,
        "max_window_layers": LAYERS,
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": list(_QWEN_MROPE_SECTION),
        },
        "bos_token_id": token_id(tokenizer, "<|endoftext|>"),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


class _QwenTokenIds(TypedDict):
    image_token_id: int
    video_token_id: int
    vision_start_token_id: int
    vision_end_token_id: int


def _qwen_token_ids(tokenizer: PreTrainedTokenizerFast) -> _QwenTokenIds:
    """The image/video placeholder and vision-span token ids a Qwen2-VL or Qwen2.5-VL config names."""
    return _QwenTokenIds(
        image_token_id=token_id(tokenizer, "<|image_pad|>"),
        video_token_id=token_id(tokenizer, "<|video_pad|>"),
        vision_start_token_id=token_id(tokenizer, "<|vision_start|>"),
        vision_end_token_id=token_id(tokenizer, "<|vision_end|>"),
    )


def _qwen_processor(tokenizer: PreTrainedTokenizerFast) -> ProcessorMixin:
    """``Qwen2VLImageProcessorPil`` in ``PaddleOCRVLProcessor`` (see the module docstring for why)."""
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=_QWEN_MIN_PIXELS,
        max_pixels=_QWEN_MAX_PIXELS,
        patch_size=_QWEN_PATCH,
        temporal_patch_size=_QWEN_TEMPORAL_PATCH,
        merge_size=_QWEN_MERGE,
    )
    return PaddleOCRVLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=_QWEN2VL_CHAT_TEMPLATE
    )


def _make_qwen2vl(seed: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Make a tiny random Qwen2-VL (dynamic-resolution ViT + Qwen2 LM with M-RoPE) and its processor.

    Processor: ``Qwen2VLImageProcessorPil`` (patch 14, temporal patch 2, merge 2, 56*56 <= pixels <= 28*28*64,
    i.e. 4..64 image tokens) wrapped in ``PaddleOCRVLProcessor`` -- see the module docstring for why not
    ``Qwen2VLProcessor``. Image token ``<|image_pad|>`` inside ``<|vision_start|>...<|vision_end|>``.
    """
    tokenizer = _qwen_tokenizer()
    config = Qwen2VLConfig(
        text_config=_qwen_text_config(tokenizer),
        vision_config={
            "depth": LAYERS,
            "embed_dim": HIDDEN,
            "hidden_size": HIDDEN,  # output of the patch merger == LM hidden size
            "mlp_ratio": 2,
            "num_heads": HEADS,
            "patch_size": _QWEN_PATCH,
            "spatial_merge_size": _QWEN_MERGE,
            "temporal_patch_size": _QWEN_TEMPORAL_PATCH,
        },
        **_qwen_token_ids(tokenizer),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2VLForConditionalGeneration(config)
    return finalise(model, tokenizer), _qwen_processor(tokenizer)


def make_tiny_qwen25vl(seed: int = 0) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Make a tiny random Qwen2.5-VL (windowed-attention ViT with an RMSNorm / gated-MLP merger + the
    Qwen2 LM with M-RoPE) and its processor, in memory.

    Not one of ``TINY_ARCHITECTURES`` (which tests iterate over as the supported processor families): a
    Qwen2.5-VL prompt is laid out exactly as a Qwen2-VL one (same image processor, same
    ``<|vision_start|><|image_pad|>...<|vision_end|>`` expansion, same ``get_rope_index`` for images), so
    the tokenizer and processor are the Qwen2-VL build's; only the model differs. Vision: 2 blocks, the
    second with full attention, the first windowed (112 px windows, i.e. 4x4 merged tokens, so images
    above 112 px on a side span several windows).
    """
    tokenizer = _qwen_tokenizer()
    config = Qwen2_5_VLConfig(
        text_config=_qwen_text_config(tokenizer),
        vision_config={
            "depth": LAYERS,
            "hidden_size": HIDDEN,
            "intermediate_size": INTERMEDIATE,
            "num_heads": HEADS,
            "out_hidden_size": HIDDEN,  # output of the patch merger == LM hidden size
            "patch_size": _QWEN_PATCH,
            "spatial_merge_size": _QWEN_MERGE,
            "temporal_patch_size": _QWEN_TEMPORAL_PATCH,
            "window_size": 112,
            "fullatt_block_indexes": [LAYERS - 1],
        },
        **_qwen_token_ids(tokenizer),
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    return finalise(model, tokenizer), _qwen_processor(tokenizer)


def _make_idefics3(seed: int) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Make a tiny random Idefics3 (SigLIP-style tower + pixel-shuffle connector + Llama LM) + processor.

    SmolVLM shares this architecture. Image splitting stays ON so tiling is exercised: images are resized to
    a 256 px longest edge, cut into 64x64 tiles (up to 4x4) plus a 64x64 global view, each tile becoming
    ``<fake_token_around_image><row_i_col_j>`` + 16 ``<image>`` tokens.
    """
    grid_tokens = [
        f"<row_{i}_col_{j}>"
        for i in range(1, _IDEFICS3_MAX_GRID + 1)
        for j in range(1, _IDEFICS3_MAX_GRID + 1)
    ]
    tokenizer = build_tokenizer(
        special_tokens=[
            "<|begin_of_text|>",
            "<end_of_utterance>",
            "<|pad|>",
            "<unk>",
            "<image>",
            "<fake_token_around_image>",
            "<global-img>",
            *grid_tokens,
        ],
        named_tokens={
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
            "end_of_utterance_token": "<end_of_utterance>",
        },
        bos_token="<|begin_of_text|>",
        eos_token="<end_of_utterance>",
        pad_token="<|pad|>",
        unk_token="<unk>",
        chat_template=_IDEFICS3_CHAT_TEMPLATE,
    )
    for token in ("<fake_token_around_image>", "<global-img>", *grid_tokens):
        token_id(tokenizer, token)
    config = Idefics3Config(
        vision_config=Idefics3VisionConfig(
            hidden_size=HIDDEN,
            intermediate_size=INTERMEDIATE,
            num_hidden_layers=LAYERS,
            num_attention_heads=HEADS,
            image_size=_IDEFICS3_TILE,
            patch_size=_IDEFICS3_PATCH,
        ),
        text_config=llama_text_config(tokenizer),
        image_token_id=token_id(tokenizer, "<image>"),
        scale_factor=_IDEFICS3_SCALE_FACTOR,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config)

    image_processor = Idefics3ImageProcessorPil(
        size={"longest_edge": _IDEFICS3_LONGEST_EDGE},
        max_image_size={"longest_edge": _IDEFICS3_TILE},
        do_image_splitting=True,
    )
    processor = Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=_IDEFICS3_IMAGE_SEQ_LEN,
        chat_template=_IDEFICS3_CHAT_TEMPLATE,
    )
    return finalise(model, tokenizer), processor


_MAKERS: dict[str, Callable[[int], tuple[PreTrainedModel, ProcessorMixin]]] = {
    "llava": _make_llava,
    "qwen2_vl": _make_qwen2vl,
    "idefics3": _make_idefics3,
}


def make_tiny(arch: TinyArchitecture, seed: int = 0) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Build the tiny ``(model, processor)`` of architecture ``arch`` in memory, without saving.

    Why public: it is the reference a saved folder is checked against (a reload must give the same logits
    as the model it was saved from), and tests that do not need a folder can skip the disk round trip.
    """
    try:
        maker = _MAKERS[arch]
    except KeyError:
        raise ValueError(
            f"unknown tiny architecture {arch!r}; expected one of {TINY_ARCHITECTURES}"
        ) from None
    return maker(seed)


def build_tiny_qwen2vl(out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny Qwen2-VL (see ``_make_qwen2vl``) and save it to ``out_dir``; returns ``out_dir``."""
    return save_model(*_make_qwen2vl(seed), out_dir)


def build_tiny_qwen25vl(out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny Qwen2.5-VL (see ``make_tiny_qwen25vl``) and save it to ``out_dir``; returns it."""
    return save_model(*make_tiny_qwen25vl(seed), out_dir)


def build_tiny_idefics3(out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny Idefics3 / SmolVLM (see ``_make_idefics3``) and save it to ``out_dir``; returns it."""
    return save_model(*_make_idefics3(seed), out_dir)


def build_tiny(arch: TinyArchitecture, out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny model of architecture ``arch`` (one of ``TINY_ARCHITECTURES``) into ``out_dir``."""
    return save_model(*make_tiny(arch, seed), out_dir)
