"""The embedded tiny VLM's architecture: a tiny LLaVA (CLIP vision tower + Llama language model) built from a
config, with a byte-level BPE tokenizer trained locally on a generated corpus.

Why this module exists: foveate's default model must be built and trained offline, on a CPU, with no
downloaded weights. ``make_llava`` builds the architecture the trainer (``foveate.tiny_vlm.train``) starts
from, sized by a ``LlavaShape``; ``build_tiny_llava`` saves a random-weight one, which is what foveate
runs when the trained weights are missing. Everything is deterministic per seed: the tokenizer is trained
locally on a generated corpus (no randomness involved) and the weights are initialised after
``torch.manual_seed(seed)``. The tiny random models of the other families (Qwen2-VL, Idefics3), for tests,
are built from the same parts in ``foveate.testing.tiny_models``.

Design notes:

* The tokenizer is a byte-level BPE (no unknown characters ever), trained on a tiny corpus built from the
  words prompts commonly use, so that e.g. ``"Yes"``, ``" Yes"``, ``"A"`` and ``" A"`` are single tokens --
  tests and the demo score multiple-choice / yes-no answers by single-token logits.
* Sizes keep ``head_dim == 32`` (so a CPU vLLM build can serve the folders) while staying well under one
  million parameters, so a forward pass takes milliseconds.
* No torchvision is needed: the ``*Pil`` image-processor variants are used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    ProcessorMixin,
)

__all__ = [
    "CHAT_IS_IMAGE",
    "CHAT_PARTS",
    "LlavaShape",
    "build_tiny_llava",
    "build_tokenizer",
    "finalise",
    "llama_text_config",
    "make_llava",
    "save_model",
    "token_id",
]

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------------
# Shared sizes. head_dim = hidden / heads = 32 everywhere (vLLM's CPU attention wants head_dim >= 32).
# ----------------------------------------------------------------------------------------------------------
HIDDEN = 64
HEADS = 2
HEAD_DIM = HIDDEN // HEADS
INTERMEDIATE = 128
LAYERS = 2
MAX_POSITIONS = 4096
_BPE_VOCAB_TARGET = 1024

# LLaVA: one fixed-size 64x64 crop, 8x8 patches -> 64 image tokens (CLS dropped by the "default" strategy).
_LLAVA_IMAGE_SIZE = 64
_LLAVA_PATCH = 8

# Words that must each be a single token, both at the start of a string and after a space: answers are
# scored from the logits of a single next token.
_SINGLE_TOKEN_WORDS = ("Yes", "No", "yes", "no", "A", "B", "C", "D")

_WORDS_TEXT = (
    "yes no Yes No true false True False A B C D E a an the The of in on at to from with and or not is are "
    "was be this that these those it its there here what What which Which who where Where when how How why "
    "many much color colour red green blue yellow orange purple pink black white gray grey brown image Image "
    "picture photo describe Describe answer Answer question Question option options choice choose Choose "
    "left right top bottom up down middle center centre upper lower corner side front back near far above "
    "below behind between inside outside small large big tiny huge long short tall wide count Count number "
    "one two three four five six seven eight nine ten zero object objects person people man woman car sign "
    "text word letter read Read written say says shown see visible region crop zoom detail details look "
    "find locate box area part whole scene background foreground only single best correct letter please "
    "Please user assistant system User Assistant System USER ASSISTANT SYSTEM You you are a helpful I can "
    "cannot do does Is Are Does Do Can there's it's image's"
)
_WORDS = tuple(_WORDS_TEXT.split())
_PUNCTUATION = (".", ",", "?", "!", ":", ";", "'", '"', "(", ")", "-", "/", "*", "#", "%", "+", "=", "[", "]")


def _training_corpus(extra_words: tuple[str, ...] = ()) -> list[str]:
    """A small, fixed corpus in which every vocabulary word occurs often, alone and after a space.

    Why: BPE merges follow frequency, so repeating each word (and the must-be-single-token words most of
    all) guarantees the merges that make them whole tokens. Nothing random is involved, so the tokenizer
    is identical on every build.
    """
    lines: list[str] = []
    for word in _WORDS + extra_words:
        lines.extend([word, f"{word} {word} {word}.", f"Is it {word}? {word}"] * 4)
    for word in _SINGLE_TOKEN_WORDS + extra_words:
        lines.extend([word, f"{word}.", f"Answer: {word}", f"The answer is {word}."] * 40)
    for i in range(1000):
        lines.append(f"{i} {i / 10:.1f} ({i}, {i + 1}) {i}%")
    lines.append(" ".join(_PUNCTUATION))
    lines.extend(["\n", "\n\n", " \n", ": ", "? ", ". "] * 50)
    return lines


def build_tokenizer(
    *,
    special_tokens: list[str],
    named_tokens: dict[str, str],
    bos_token: str | None,
    eos_token: str,
    pad_token: str,
    unk_token: str,
    chat_template: str,
    extra_words: tuple[str, ...] = (),
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE locally and wrap it as a transformers fast tokenizer.

    Why byte-level: it never emits an unknown token, whatever text a test or the demo throws at it, and
    offsets stay exact (Idefics3's processor maps characters back to tokens). ``special_tokens`` become atomic
    added tokens with the lowest ids; ``named_tokens`` (e.g. ``{"image_token": "<image>"}``) are exposed as
    tokenizer attributes such as ``tokenizer.image_token`` / ``tokenizer.image_token_id``, which the
    processors read.
    """
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=_BPE_VOCAB_TARGET,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_training_corpus(extra_words), trainer=trainer)

    named = set(named_tokens.values())
    core = {t for t in (bos_token, eos_token, pad_token, unk_token) if t is not None}
    extra: dict[str, Any] = dict(named_tokens)
    # Remaining specials (e.g. Idefics3's <row_i_col_j>) are declared special so they are skipped on decode.
    others = [t for t in special_tokens if t not in named and t not in core]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=bos_token,
        eos_token=eos_token,
        pad_token=pad_token,
        unk_token=unk_token,
        extra_special_tokens=extra,
        padding_side="left",
        chat_template=chat_template,
        clean_up_tokenization_spaces=False,
        model_max_length=MAX_POSITIONS,
    )
    if others:
        tokenizer.add_special_tokens({"extra_special_tokens": others}, replace_extra_special_tokens=False)

    for word in _SINGLE_TOKEN_WORDS + extra_words:
        for text in (word, f" {word}"):
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) != 1:
                raise RuntimeError(f"tiny tokenizer splits {text!r} into {len(ids)} tokens; grow the corpus")
    return tokenizer


def token_id(tokenizer: PreTrainedTokenizerFast, token: str) -> int:
    """Id of a token that must exist as a whole (fails loudly rather than silently mapping to unk)."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int) or token_id == tokenizer.unk_token_id:
        raise RuntimeError(f"token {token!r} is missing from the tiny tokenizer")
    return token_id


def llama_text_config(tokenizer: PreTrainedTokenizerFast) -> LlamaConfig:
    """The tiny Llama language model shared by the LLaVA and Idefics3 builds."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        head_dim=HEAD_DIM,
        max_position_embeddings=MAX_POSITIONS,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )


def finalise(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast) -> PreTrainedModel:
    """Put the model in eval mode and pin its generation defaults to the tokenizer's special ids.

    Why: without explicit pad/eos ids ``generate`` warns on every call and may pick a different pad id than
    the one the left-padding tokenizer inserts; greedy decoding keeps demo and test outputs reproducible.
    """
    model.eval()
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.do_sample = False
    n_params = sum(p.numel() for p in model.parameters())
    logger.debug("made tiny %s: %d params, vocab %d", model.config.model_type, n_params, len(tokenizer))
    return model


def save_model(model: PreTrainedModel, processor: ProcessorMixin, out_dir: Path) -> Path:
    """Write model (safetensors) and processor (tokenizer, image processor, chat template) to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    logger.info("saved tiny %s to %s", model.config.model_type, out_dir)
    return out_dir


# ----------------------------------------------------------------------------------------------------------
# Chat templates. Each accepts content as a plain string or as a list of {"type": "image"} /
# {"type": "text", "text": ...} parts, and the system / user / assistant roles.
# ----------------------------------------------------------------------------------------------------------
CHAT_PARTS = (
    "{%- if message['content'] is string -%}"
    "{%- set parts = [{'type': 'text', 'text': message['content']}] -%}"
    "{%- else -%}{%- set parts = message['content'] -%}{%- endif -%}"
)
CHAT_IS_IMAGE = "part['type'] in ('image', 'image_url')"

# LLaVA-1.5 style: "<s>USER: <image>\nWhat is this? ASSISTANT: An answer</s>USER: ... ASSISTANT:"
_LLAVA_CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}" + CHAT_PARTS + "{%- if message['role'] == 'system' -%}"
    "{%- for part in parts if part['type'] == 'text' -%}{{- part['text'] -}}{%- endfor -%}{{- '\\n' -}}"
    "{%- else -%}"
    "{{- message['role'].upper() + ': ' -}}"
    "{%- for part in parts -%}"
    "{%- if " + CHAT_IS_IMAGE + " -%}{{- '<image>\\n' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if message['role'] == 'assistant' -%}{{- eos_token -}}{%- else -%}{{- ' ' -}}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
)


# ----------------------------------------------------------------------------------------------------------
# Builders
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LlavaShape:
    """Sizes of a tiny LLaVA. The defaults make the random test model; the trained fixture VLM is larger.

    ``squash`` resizes every image to ``image_size`` x ``image_size`` without cropping (so a wide view is
    seen whole, as zoom search needs); otherwise CLIP's shortest-edge resize + centre crop is used.
    ``extra_words`` must become single tokens (answers the model is trained to give).
    """

    image_size: int = _LLAVA_IMAGE_SIZE
    patch_size: int = _LLAVA_PATCH
    hidden: int = HIDDEN
    heads: int = HEADS
    intermediate: int = INTERMEDIATE
    vision_layers: int = LAYERS
    text_layers: int = LAYERS
    squash: bool = False
    extra_words: tuple[str, ...] = ()


def make_llava(seed: int, shape: LlavaShape | None = None) -> tuple[PreTrainedModel, ProcessorMixin]:
    """Make a tiny random LLaVA (CLIP vision tower + Llama LM) and its processor, in memory.

    Processor: ``LlavaProcessor`` + ``CLIPImageProcessorPil``, image token ``<image>`` expanded to
    ``(image_size / patch)**2`` tokens (CLS dropped by the ``"default"`` feature-select strategy).
    """
    shape = shape or LlavaShape()
    tokenizer = build_tokenizer(
        special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        named_tokens={"image_token": "<image>"},
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        chat_template=_LLAVA_CHAT_TEMPLATE,
        extra_words=shape.extra_words,
    )
    image_token_id = token_id(tokenizer, "<image>")
    num_image_tokens = (shape.image_size // shape.patch_size) ** 2
    text_config = llama_text_config(tokenizer)
    text_config.hidden_size = shape.hidden
    text_config.intermediate_size = shape.intermediate
    text_config.num_hidden_layers = shape.text_layers
    text_config.num_attention_heads = shape.heads
    text_config.num_key_value_heads = shape.heads
    text_config.head_dim = shape.hidden // shape.heads
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=shape.hidden,
            intermediate_size=shape.intermediate,
            projection_dim=shape.hidden,
            num_hidden_layers=shape.vision_layers,
            num_attention_heads=shape.heads,
            image_size=shape.image_size,
            patch_size=shape.patch_size,
        ),
        text_config=text_config,
        image_token_index=image_token_id,
        image_seq_length=num_image_tokens,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)

    side = shape.image_size
    if shape.squash:
        image_processor = CLIPImageProcessorPil(
            size={"height": side, "width": side},
            do_center_crop=False,
            crop_size={"height": side, "width": side},
        )
    else:
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=shape.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token
        chat_template=_LLAVA_CHAT_TEMPLATE,
        image_token="<image>",
    )
    return finalise(model, tokenizer), processor


def build_tiny_llava(out_dir: Path, seed: int = 0) -> Path:
    """Build the tiny random LLaVA (``make_llava`` with the default shape) and save it to ``out_dir``."""
    return save_model(*make_llava(seed), out_dir)
