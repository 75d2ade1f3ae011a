"""Moving a trained tiny VLM onto a finer patch grid (``foveate.tiny_vlm.regrid``): the 8 px candidates start
there, so a wrong pooling scale or a shuffled position table would hide inside hours of fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from foveate.tiny_vlm import TINY_VLM_PATH
from foveate.tiny_vlm.regrid import finer_kernel, finer_positions, regrid
from foveate.vlm.transformers_vlm import TransformersVLM
from foveate.vlm.types import VLMRequest


def _blown_up(image: torch.Tensor, ratio: int) -> torch.Tensor:
    """Each pixel repeated ``ratio`` x ``ratio``: what a coarse patch of the fine patch's content holds."""
    return image.repeat_interleave(ratio, dim=-1).repeat_interleave(ratio, dim=-2)


def test_a_fine_patch_embeds_as_the_coarse_kernel_embeds_it_blown_up() -> None:
    torch.manual_seed(0)
    kernel = torch.randn(5, 3, 16, 16)
    image = torch.rand(1, 3, 32, 24)  # 4 x 3 fine patches
    fine = torch.nn.functional.conv2d(image, finer_kernel(kernel, 8), stride=8)
    coarse = torch.nn.functional.conv2d(_blown_up(image, 2), kernel, stride=16)
    assert fine.shape == coarse.shape == (1, 5, 4, 3)
    assert torch.allclose(fine, coarse, atol=1e-4)
    quarter = torch.nn.functional.conv2d(image, finer_kernel(kernel, 4), stride=4)
    coarse = torch.nn.functional.conv2d(_blown_up(image, 4), kernel, stride=16)
    assert torch.allclose(quarter, coarse, atol=1e-4)
    with pytest.raises(ValueError, match="6 px patches do not tile the model's 16 px ones"):
        finer_kernel(kernel, 6)
    with pytest.raises(ValueError, match="already has 16 px patches; regrid moves only to a finer grid"):
        finer_kernel(kernel, 16)
    with pytest.raises(ValueError, match="not 0 px"):
        finer_kernel(kernel, 0)


def test_positions_keep_the_class_row_and_the_grid_layout() -> None:
    grid = torch.arange(4.0).repeat(4)  # 4 x 4, each row 0, 1, 2, 3 (left to right)
    table = torch.stack([torch.cat([torch.tensor([9.0]), grid]), torch.cat([torch.tensor([-9.0]), -grid])], 1)
    moved = finer_positions(table, 8)
    assert moved.shape == (65, 2)
    assert moved[0].tolist() == [9.0, -9.0]
    rows = moved[1:, 0].reshape(8, 8)
    assert torch.equal(rows, rows[:1].expand(8, 8))  # every row alike, as in the coarse table
    assert rows[0, 0] == 0.0 and rows[0, -1] == 3.0  # the edges keep the edge columns' values
    assert bool((rows[0, 1:] >= rows[0, :-1]).all())  # left to right stays left to right
    assert torch.equal(finer_positions(table, 4), table)  # the same grid: unchanged
    with pytest.raises(ValueError, match="not a class row and a square grid"):
        finer_positions(table[:-1], 8)


def test_the_moved_model_sees_its_image_as_the_shipped_one_sees_it_blown_up(tmp_path: Path) -> None:
    out = tmp_path / "p8"
    moved = regrid(TINY_VLM_PATH, out)
    config = json.loads((out / "config.json").read_text())
    assert config["vision_config"]["patch_size"] == 8 and config["image_seq_length"] == 256
    assert json.loads((out / "processor_config.json").read_text())["patch_size"] == 8
    assert not (out / "foveate_gates.json").exists()  # the coarse model's gates do not hold for this one
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (out / name).read_bytes() == (TINY_VLM_PATH / name).read_bytes()

    shipped = TransformersVLM(TINY_VLM_PATH, device="cpu").model
    image = torch.rand(1, 3, 128, 128)
    fine = moved.model.vision_tower.embeddings.patch_embedding(image)
    coarse = shipped.model.vision_tower.embeddings.patch_embedding(_blown_up(image, 2))
    assert fine.shape == coarse.shape == (1, 128, 16, 16)
    assert torch.allclose(fine, coarse, atol=1e-4)

    vlm = TransformersVLM(out, device="cpu")
    view = Image.new("RGB", (300, 200), (200, 40, 40))
    result = vlm.yes_probability(VLMRequest.from_prompt("Is there a red square?", [view]))
    assert result.usage.visual_tokens == 256  # the processor counts the finer grid's tokens
    with pytest.raises(ValueError, match="is not empty"):
        regrid(TINY_VLM_PATH, out)  # never over a folder whose old files would pass for the new model's
    with pytest.raises(ValueError, match="already has 8 px patches"):
        regrid(out, tmp_path / "again")
