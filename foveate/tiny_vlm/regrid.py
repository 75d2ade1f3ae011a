"""A trained tiny VLM moved onto a finer patch grid: ``python -m foveate.tiny_vlm.regrid SOURCE OUT``.

Training a tower with 8 px patches from scratch through the whole chain of ``foveate.tiny_vlm.harder`` costs
about four times the 16 px chain (hours on 2 CPU cores), so the 8 px candidates (docs/benchmarks/
fixture-notes.md, from session 14) start from the 16 px weights moved onto the finer grid, then fine-tuned:

- each patch kernel is average-pooled by the ratio of the sides and multiplied by the ratio squared, so a
  finer patch embeds exactly as the coarse kernel embedded that patch blown up to the coarse side (a flat
  patch embeds as before; ``tests/test_tiny_vlm_regrid.py`` checks the identity);
- the grid of position embeddings is resized bilinearly to the finer grid; the class position is kept;
- the configuration says the new patch side and image-token count, the processor the new patch side (it
  counts the image tokens from it); nothing else changes
  (the language model and the projector are moved as they are, the tokenizer's and generation files copied
  byte for byte: a processor saved anew rewrites the tokenizer's padding settings).

A model so moved sees four times the visual tokens of a view and reads them poorly until fine-tuned
(``python -m foveate.tiny_vlm.train --init OUT --patch-size 8 ...``).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import torch

__all__ = ["finer_kernel", "finer_positions", "regrid"]

PROCESSOR_FILE = "processor_config.json"
#: Copied as they are. Not the shipped gates (foveate_gates.json): they were calibrated on the coarse model.
COPIED = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")


def finer_kernel(kernel: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``kernel`` (out, channels, side, side) for patches of ``patch_size``: pooled, then scaled so that a
    fine patch embeds as the coarse kernel embeds it blown up (each pixel repeated ``ratio`` x ``ratio``)."""
    side = int(kernel.shape[-1])
    if not 1 <= patch_size < side:
        raise ValueError(
            f"the model already has {side} px patches; regrid moves only to a finer grid, not {patch_size} px"
        )
    if side % patch_size:
        raise ValueError(f"{patch_size} px patches do not tile the model's {side} px ones: need a divisor")
    ratio = side // patch_size
    return torch.nn.functional.avg_pool2d(kernel, ratio) * ratio * ratio


def finer_positions(table: torch.Tensor, grid: int) -> torch.Tensor:
    """A position table (class row first, then a square grid row by row) resized to ``grid`` x ``grid``."""
    old = round((table.shape[0] - 1) ** 0.5)
    if old * old != table.shape[0] - 1:
        raise ValueError(f"a position table of {table.shape[0]} rows is not a class row and a square grid")
    square = table[1:].reshape(old, old, -1).permute(2, 0, 1).unsqueeze(0)
    resized = torch.nn.functional.interpolate(square, size=(grid, grid), mode="bilinear", align_corners=False)
    return torch.cat([table[:1], resized[0].permute(1, 2, 0).reshape(grid * grid, -1)])


def regrid(source: Path, out: Path, patch_size: int = 8) -> Any:
    """The LLaVA in ``source`` with its vision tower on ``patch_size`` px patches, saved with its processor in
    ``out`` (which must not be ``source``); returns the moved model."""
    from transformers import LlavaForConditionalGeneration

    if out.exists() and any(out.iterdir()):  # old files there (gates, weights) would pass for the new model's
        raise ValueError(f"regrid writes a new model folder; {out} is not empty")
    model: Any = LlavaForConditionalGeneration.from_pretrained(source)
    processing = json.loads((source / PROCESSOR_FILE).read_text())
    vision = model.config.vision_config
    state = model.state_dict()
    prefix = "model.vision_tower.embeddings."
    kernel = finer_kernel(state[prefix + "patch_embedding.weight"], patch_size)
    grid = int(vision.image_size) // patch_size
    positions = finer_positions(state[prefix + "position_embedding.weight"], grid)
    config = model.config
    vision.patch_size = patch_size
    config.image_seq_length = grid * grid
    moved = LlavaForConditionalGeneration(config)
    moved.generation_config = model.generation_config
    state[prefix + "patch_embedding.weight"] = kernel
    state[prefix + "position_embedding.weight"] = positions
    state.pop(prefix + "position_ids", None)  # a buffer the new model sized for its own grid
    missing, unexpected = moved.load_state_dict(state, strict=False)
    if unexpected or [key for key in missing if not key.endswith("position_ids")]:
        raise RuntimeError(f"regrid of {source}: missing {missing}, unexpected {unexpected}")
    processing["patch_size"] = patch_size
    out.mkdir(parents=True, exist_ok=True)
    moved.save_pretrained(out)
    (out / PROCESSOR_FILE).write_text(json.dumps(processing, indent=2, sort_keys=True) + "\n")
    for name in COPIED:
        if (source / name).exists():
            shutil.copy2(source / name, out / name)
    return moved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a tiny VLM folder (e.g. foveate/tiny_vlm/weights)")
    parser.add_argument("out", type=Path, help="where the moved model and its processor go")
    parser.add_argument("--patch-size", type=int, default=8, help="the new patch side in px [default: 8]")
    args = parser.parse_args(argv)
    regrid(args.source, args.out, args.patch_size)


if __name__ == "__main__":
    main()
