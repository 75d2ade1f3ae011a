"""A model under training: the tiny LLaVA with its auxiliary probes, and the loss of one batch."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from foveate.synthetic import COLORS, SHAPES
from foveate.tiny_vlm.architecture import make_llava
from foveate.tiny_vlm.losses import answer_loss, focus_loss
from foveate.tiny_vlm.recipe import SHAPE, TrainConfig, init_vision_positions, model_shape
from foveate.tiny_vlm.tasks import PATCH_COLOR_IDS

__all__ = ["Trainee", "make_trainee", "training_loss"]


@dataclass
class Trainee:
    """A model under training with its auxiliary probes on the vision tower's patch features.

    The probes are dropped after training (the saved model is a plain LLaVA). Dense: linear probes must
    name the colour and the shape of each patch that shows an object (a target, or in the harder world a
    distractor), so the tower learns to see small coloured shapes quickly. Pooled: a linear probe on the
    *mean* of the patch features must give each visible target's horizontal position by colour, so "where
    is the red one" is readable from any mix of image tokens; without it the language model, whose
    attention starts out nearly uniform, never learns left from right.
    """

    model: Any
    probe: torch.nn.Linear
    position_probe: torch.nn.Linear
    shape_probe: torch.nn.Linear
    binding_probe: torch.nn.Linear
    captured: dict[str, torch.Tensor]
    hook: Any
    attention: str  # the saved config's attention kernel (eager is switched on only to read weights)

    @property
    def params(self) -> list[torch.nn.Parameter]:
        probes = (self.probe, self.position_probe, self.shape_probe, self.binding_probe)
        return [*self.model.parameters(), *(p for probe in probes for p in probe.parameters())]

    def close(self) -> None:
        self.hook.remove()
        self.model.set_attn_implementation(self.attention)


def make_trainee(
    cfg: TrainConfig, seed: int, tower: dict[str, torch.Tensor] | None = None
) -> tuple[Trainee, Any]:
    """A fresh model (random from ``seed``, or ``cfg.init``; its vision tower's weights from ``tower`` when
    given, e.g. after the seeing phase) with fresh probes, and its processor."""
    torch.manual_seed(seed)
    random.seed(seed)
    built, processor = make_llava(seed, model_shape(cfg.patch_size))
    model: Any = built
    if cfg.init:
        from transformers import LlavaForConditionalGeneration

        model = LlavaForConditionalGeneration.from_pretrained(cfg.init)
        saved = int(model.config.vision_config.patch_size)
        if saved != cfg.patch_size:  # the processor above would count the wrong number of image tokens
            raise ValueError(
                f"--init {cfg.init} has {saved} px patches, this run {cfg.patch_size}: "
                f"pass --patch-size {saved}"
            )
    elif cfg.position_scale > 0:
        init_vision_positions(model, cfg.position_scale)
    if tower is not None:
        model.model.vision_tower.load_state_dict(tower)
    model = model.to(cfg.device)
    probe = torch.nn.Linear(SHAPE.hidden, 1 + len(PATCH_COLOR_IDS)).to(cfg.device)
    position_probe = torch.nn.Linear(SHAPE.hidden, len(COLORS)).to(cfg.device)
    shape_probe = torch.nn.Linear(SHAPE.hidden, 1 + len(SHAPES)).to(cfg.device)
    binding_probe = torch.nn.Linear(SHAPE.hidden, 1 + len(PATCH_COLOR_IDS) * len(SHAPES)).to(cfg.device)
    captured: dict[str, torch.Tensor] = {}

    def keep_patches(_module: Any, _inputs: Any, output: Any) -> None:
        captured["patches"] = output.hidden_states[-2][:, 1:]

    hook = model.model.vision_tower.register_forward_hook(keep_patches)
    model.train()
    trainee = Trainee(
        model,
        probe,
        position_probe,
        shape_probe,
        binding_probe,
        captured,
        hook,
        model.config._attn_implementation,
    )
    return trainee, processor


def training_loss(
    trainee: Trainee, inputs: dict[str, torch.Tensor], focus_weight: float, cfg: TrainConfig
) -> torch.Tensor:
    """The answer loss plus the auxiliary losses (dense colours, pooled positions, attention focus)."""
    model = trainee.model
    patch_colors = inputs.pop("patch_colors", None)
    patch_shapes = inputs.pop("patch_shapes", None)
    color_x = inputs.pop("color_x", None)
    focus = inputs.pop("focus")
    loss, out = answer_loss(model, inputs, output_attentions=focus_weight > 0)
    if focus_weight > 0:
        attended = focus_loss(
            out.attentions[SHAPE.text_layers // 2],  # the layer relevance_maps reads by default
            inputs["input_ids"],
            inputs["attention_mask"].sum(dim=1),
            focus,
            int(model.config.image_token_id),
        )
        if attended is not None:
            loss = loss + focus_weight * attended
    patches = trainee.captured["patches"]
    if patch_colors is not None and cfg.aux_weight > 0:
        logits = trainee.probe(patches)
        aux = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), patch_colors.reshape(-1)
        )
        loss = loss + cfg.aux_weight * aux
    if patch_shapes is not None and cfg.shape_weight > 0:
        logits = trainee.shape_probe(patches)
        aux = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), patch_shapes.reshape(-1)
        )
        loss = loss + cfg.shape_weight * aux
    if patch_colors is not None and patch_shapes is not None and cfg.binding_weight > 0:
        # both maps are painted by the same objects in the same order, so a patch's pair is one object's
        both = (patch_colors > 0) & (patch_shapes > 0)
        pairs = torch.where(both, (patch_colors - 1) * len(SHAPES) + patch_shapes, 0)
        logits = trainee.binding_probe(patches)
        aux = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), pairs.reshape(-1))
        loss = loss + cfg.binding_weight * aux
    if color_x is not None and cfg.position_weight > 0:
        shown = ~torch.isnan(color_x)
        if bool(shown.any()):
            guess = trainee.position_probe(patches.mean(dim=1)).sigmoid()
            loss = loss + cfg.position_weight * ((guess[shown] - color_x[shown]) ** 2).mean()
    return loss
