"""The Qwen2.5-VL family: Qwen2-VL's token arithmetic, attention grid and M-RoPE with its own model types.

Its language model is the same Qwen2 decoder with M-RoPE, its window-attention vision tower is reached
through the same ``get_image_features``, and its ``get_rope_index`` differs from Qwen2-VL's only for videos
(``second_per_grid_ts`` spaces their temporal positions), which pruning refuses. Its processor is
``Qwen2_5_VLProcessor`` over ``Qwen2VLImageProcessor``: the same counts.
"""

from __future__ import annotations

from dataclasses import replace

from foveate.vlm.families import qwen2_vl

__all__ = ["FAMILY"]

FAMILY = replace(
    qwen2_vl.FAMILY,
    name="qwen2_5_vl",
    model_types=("qwen2_5_vl",),
    pruning={"fastv": frozenset({"qwen2_5_vl_text"})},
)
