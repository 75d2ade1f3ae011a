"""What a processed batch is and costs, and the tokenizer facts the backend reads once at load.

``Encoded`` is what ``TransformersVLM.encode`` returns: the processor's tensors plus, per row, its real
length, its image placeholders and (under pruning) the visual tokens the language model really computes,
so that a call can hold its exact cost on the ledger before the forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from foveate.errors import ModelLoadError
from foveate.vlm.budget import TokenUsage

__all__ = ["Encoded", "default_device", "eos_ids", "find_image_token_id", "single_token_ids", "to_device"]


@dataclass
class Encoded:
    """A processed batch and what it will cost."""

    inputs: dict[str, Any]
    """The processor's output (``input_ids``, ``attention_mask``, ``pixel_values``, ...), on the CPU."""
    lengths: list[int]
    """Valid (non-pad) tokens per row."""
    visual: list[int]
    """Image-placeholder tokens per row."""
    computed: list[int] | None = None
    """Visual tokens the language model computes per row when pruning, else None."""

    @property
    def charged_visual(self) -> list[int]:
        return self.visual if self.computed is None else self.computed

    @property
    def charged_lengths(self) -> list[int]:
        """Tokens charged per row: text tokens plus the visual tokens really computed."""
        return [n - v + c for n, v, c in zip(self.lengths, self.visual, self.charged_visual, strict=True)]

    def row_usage(self, row: int, forward_passes: int) -> TokenUsage:
        return TokenUsage(
            visual_tokens=self.charged_visual[row],
            text_tokens=self.lengths[row] - self.visual[row],
            forward_passes=forward_passes,
        )

    @property
    def usage(self) -> TokenUsage:
        return TokenUsage(
            visual_tokens=sum(self.charged_visual),
            text_tokens=sum(self.lengths) - sum(self.visual),
            forward_passes=1,
        )


def default_device() -> str:
    """CUDA when present, else CPU (Apple's MPS is opt-in: its kernels still differ)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def to_device(inputs: dict[str, Any], device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """The batch on ``device``, floating-point tensors (pixels) in the model's ``dtype``."""
    moved: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device)
            if value.is_floating_point():
                value = value.to(dtype)
        moved[key] = value
    return moved


def find_image_token_id(processor: Any, config: Any, model_id: str) -> int:
    """The image placeholder's token id, from the processor or the model config."""
    for holder, name in (
        (processor, "image_token_id"),
        (config, "image_token_id"),
        (config, "image_token_index"),
    ):
        value = getattr(holder, name, None)
        if isinstance(value, int):
            return value
    raise ModelLoadError(f"cannot find the image token of model {model_id}")


def single_token_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    """Ids of the single-token spellings of a word ("Yes", " Yes", "yes", ...)."""
    unk = tokenizer.unk_token_id
    ids: set[int] = set()
    for word in words:
        for variant in (word, " " + word):
            encoded = tokenizer.encode(variant, add_special_tokens=False)
            if len(encoded) == 1 and encoded[0] != unk:
                decoded = tokenizer.decode(encoded).strip()
                if decoded == word:
                    ids.add(int(encoded[0]))
    return sorted(ids)


def eos_ids(model: Any, config: Any, tokenizer: Any) -> set[int]:
    """Every end-of-sequence id the generation config, the model config or the tokenizer names."""
    ids: set[int] = set()
    for holder in (getattr(model, "generation_config", None), config, tokenizer):
        value = getattr(holder, "eos_token_id", None)
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids
