"""The tiny VLM's recipe: its shape, the training settings, the examples and how they are batched."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foveate.synthetic import HARD, PLAIN, generate_scene
from foveate.tiny_vlm.architecture import LlavaShape
from foveate.tiny_vlm.tasks import (
    ANSWER_WORDS,
    ANSWERABLE,
    EXISTENCE,
    LATENT,
    SIDE,
    Example,
    examples_for_scene,
)
from foveate.tiny_vlm.views import VISIBLE_PIXELS, NodeViews

__all__ = [
    "DEFAULT_OUT",
    "IMAGE_SIZE",
    "SHAPE",
    "Batcher",
    "TrainConfig",
    "build_examples",
    "hard_scene",
    "init_vision_positions",
    "model_shape",
    "sincos_positions",
]


IMAGE_SIZE = 128
SHAPE = LlavaShape(
    image_size=IMAGE_SIZE,
    patch_size=16,
    hidden=128,
    heads=4,
    intermediate=256,
    vision_layers=4,
    text_layers=4,
    squash=True,
    extra_words=tuple(
        dict.fromkeys(
            [
                *ANSWER_WORDS,
                *re.findall(r"[A-Za-z]+", " ".join([EXISTENCE, LATENT, ANSWERABLE, SIDE, "color left"])),
            ]
        )
    ),
)
DEFAULT_OUT = Path(__file__).parent / "weights"


def model_shape(patch_size: int) -> LlavaShape:
    """``SHAPE`` with another patch side: 16 px gives 64 visual tokens a view, 8 px 256 (a 10 px shape then
    covers a 2x2 block of patches instead of part of one; fixture-notes.md, 2026-12-05, names that as the
    lever for the harder world's search probes). ``ValueError`` unless it tiles ``IMAGE_SIZE``."""
    if patch_size < 1 or IMAGE_SIZE % patch_size:
        raise ValueError(f"--patch-size {patch_size} does not tile the {IMAGE_SIZE} px input")
    return replace(SHAPE, patch_size=patch_size)


def _option(default: Any, text: str) -> Any:
    """A ``TrainConfig`` field with its ``--help`` line (``foveate.tiny_vlm.train.parse_options``)."""
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """One training run's settings; each is a ``python -m foveate.tiny_vlm.train`` option of the same name.

    Phases, in the order they run: seeing (the vision tower alone), grounding (side and relation questions),
    training (every question, on the training scenes), binding (shape and existence questions), focusing
    (other scenes, paired probes, attention supervision). A phase with 0 epochs or steps is skipped.
    """

    scenes: int = _option(1000, "training scenes (the training phase's and grounding's)")
    eval_scenes: int = _option(150, "held-out scenes the run reports its accuracy on")
    epochs: int = _option(3, "epochs of the training phase (0 skips it)")
    batch_size: int = _option(32, "examples per step")
    lr: float = _option(1e-3, "the training phase's peak learning rate")
    seed: int = _option(0, "weight initialisation and example order")
    train_seed: int = _option(1000, "scene seed of the training scenes (benchmarks use other seeds)")
    eval_seed: int = _option(2000, "scene seed of the held-out scenes")
    threads: int = _option(2, "torch CPU threads")
    device: str = _option("cpu", "torch device (cpu, cuda, ...)")
    aux_weight: float = _option(1.0, "weight of the dense colour probe on the tower's patches")
    # relation questions are 6% of the examples and the hardest to learn
    relation_repeats: int = _option(5, "times each relation example appears")
    position_weight: float = _option(
        10.0, "weight of the pooled position probe (each visible target's place, by colour)"
    )
    position_scale: float = _option(
        3.0, "scale of the sine-cosine table the tower's position embeddings start from (0: CLIP's)"
    )
    # Attention supervision and paired search probes in the *first* phase: off (see ``focus_loss``).
    focus_weight: float = _option(0.0, "the training phase's attention supervision weight")
    paired_probes: bool = _option(False, "the training phase asks existence and latent probes in pairs")
    # The focusing phase: paired probes on other scenes, attention supervision, tighter crops, a fresh
    # schedule.
    focus_epochs: int = _option(3, "epochs of the focusing phase (0 skips it)")
    focus_scenes: int = _option(350, "focusing scenes (other scenes than training's)")
    focus_lr: float = _option(1e-3, "the focusing phase's peak learning rate")
    focus_phase_weight: float = _option(0.5, "the focusing phase's attention supervision weight")
    # its target crops are tighter than the first phase's 1.5-6x the targets (more of them clearly visible)
    focus_context_min: float = _option(1.1, "smallest focusing crop, in target-box sides")
    focus_context_max: float = _option(2.5, "largest focusing crop, in target-box sides")
    init: str = _option("", "start from this saved tiny VLM's weights (fine-tuning) instead of random ones")
    patch_size: int = _option(
        16,
        "the vision tower's patch side in input px (16: 64 visual tokens, 8: 256); "
        "with --init, the saved model's",
    )
    # A first phase on the training scenes' side and relation questions only (see ``train``).
    grounding_epochs: int = _option(2, "epochs of the grounding phase (0 skips it)")
    grounding_lr: float = _option(1e-3, "the grounding phase's peak learning rate")
    grounding_bar: float = _option(0.75, "held-out relation accuracy grounding must reach, or it restarts")
    grounding_tries: int = _option(4, "grounding starts (new seeds) before the run gives up")
    # The harder world (foveate.synthetic.HARD: saturated distractors, photograph / texture backgrounds):
    # with either share above 0 the held-out scenes are half in each world. The shipped weights' recipe
    # (``python -m foveate.tiny_vlm.harder``) uses them.
    hard_fraction: float = _option(0.0, "share of the training scenes drawn in the harder world")
    focus_hard_fraction: float = _option(0.0, "share of the focusing scenes drawn in the harder world")
    shape_weight: float = _option(0.0, "weight of the dense shape probe (the colour probe's counterpart)")
    # The dense probe of colour *and* shape together (one class per pair): the separate colour and shape
    # probes can both be right on a patch whose features never tie a shape to its colour, which is what
    # "is there a red circle?" beside a red square and a blue circle needs.
    binding_weight: float = _option(0.0, "weight of the dense colour-and-shape probe")
    # "What is the shape of the red object?" on views where one visible object has that colour: the
    # existence probe answered "red circle" by colour alone beside a red square (P(Yes) 0.58 for a
    # same-colour confuser, 0.57 for a present target under 20 px); and the harder world's existence
    # questions repeated, since they are the few examples where shape decides the answer.
    shape_questions: bool = _option(False, "ask the shape of the one visible object of a colour")
    existence_repeats: int = _option(1, "times each harder-world existence example appears")
    # A binding phase before focusing: only the questions where shape decides (shape questions, existence
    # questions) of the focusing scenes, as grounding teaches left / right alone.
    binding_epochs: int = _option(0, "epochs of the binding phase (0 skips it)")
    binding_lr: float = _option(1e-3, "the binding phase's peak learning rate")
    # The seeing phase before all others (``foveate.tiny_vlm.seeing``): the vision tower alone names each
    # patch's shape and colour on views drawn afresh every step.
    seeing_steps: int = _option(0, "steps of the seeing phase (0 skips it)")
    seeing_lr: float = _option(1e-3, "the seeing phase's peak learning rate")
    seeing_batch_size: int = _option(32, "views per seeing step")
    # The image-tree nodes of each focusing scene (``foveate.tiny_vlm.views.NodeViews``).
    node_views: int = _option(3, "image-tree nodes asked about per focusing scene")
    node_toward: float = _option(0.7, "share of those nodes walked down toward a target")
    node_min_depth: int = _option(1, "the shallowest of those nodes")
    node_existence: bool = _option(False, "ask existence on those nodes too, not latent alone")
    # A search's stop probe asks the question itself; without the options a view showing the question's
    # shape in a colour no option offers cannot tell it from the target (zoom-notes.md, session 14).
    probe_options: bool = _option(False, "ask the answerability probe with the question's options")
    # A search that stops where the targets are 6 input px misreads them; the harder world's views a search
    # stopped on wrongly showed a distractor of the question's shape (fixture-notes.md, sessions 15-16).
    hard_answer_pixels: float = _option(6.0, "input px from which a harder-world view answers its question")
    node_confusers: int = _option(0, "focusing nodes walked toward a harder-world distractor, per scene")

    @property
    def grid(self) -> int:
        """Patches per side of a view, the size of the patch maps and focus masks the examples carry
        (``ValueError`` for a patch side that does not tile the input, before any example is built)."""
        shape = model_shape(self.patch_size)
        return shape.image_size // shape.patch_size


def hard_scene(index: int, fraction: float) -> bool:
    """Whether scene ``index`` of a mix is drawn in the harder world: ``fraction`` of them, spread evenly.

    Decided per *pair* of scenes: a scene's category follows its index's parity (``generate_scene``), and
    spreading by index put every hard scene of a half-and-half mix on odd indices, so that the harder world
    held only relation questions and the plain one only attribute questions (a first full run trained and
    measured that way).
    """
    pair = index // 2
    return math.floor((pair + 1) * fraction) > math.floor(pair * fraction)


def build_examples(
    n_scenes: int,
    scene_seed: int,
    rng_seed: int,
    relation_repeats: int = 1,
    paired_probes: bool = False,
    context: tuple[float, float] = (1.5, 6.0),
    hard_fraction: float = 0.0,
    shapes: bool = False,
    existence_repeats: int = 1,
    nodes: NodeViews | None = None,
    grid: int = IMAGE_SIZE // SHAPE.patch_size,
    probe_options: bool = False,
    hard_answer_pixels: float = VISIBLE_PIXELS,
) -> list[Example]:
    """Examples from ``n_scenes`` scenes (``hard_fraction`` of them in the harder world); relation examples
    appear ``relation_repeats`` times, the harder world's existence examples ``existence_repeats`` times."""
    rng = np.random.default_rng(rng_seed)
    out: list[Example] = []
    for index in range(n_scenes):
        world = HARD if hard_scene(index, hard_fraction) else PLAIN
        image, item = generate_scene(scene_seed, index, world=world)
        for example in examples_for_scene(
            image,
            item,
            rng,
            IMAGE_SIZE,
            paired=paired_probes,
            context=context,
            shape_questions=shapes,
            nodes=nodes or NodeViews(),
            grid=grid,
            probe_options=probe_options,
            hard_answer_pixels=hard_answer_pixels,
        ):
            repeats = relation_repeats if example.kind == "relation" else 1
            if example.kind == "existence" and example.world != "plain":
                repeats = existence_repeats
            out.extend([example] * repeats)
    return out


def sincos_positions(grid: int, dim: int) -> torch.Tensor:
    """MAE's fixed 2-D sine-cosine table, (grid * grid, dim): half the channels code rows, half columns."""

    def encode(pos: np.ndarray, channels: int) -> np.ndarray:
        omega = 1.0 / 10000 ** (np.arange(channels // 2) / (channels / 2))
        angles = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    rows, cols = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    table = np.concatenate([encode(rows, dim // 2), encode(cols, dim // 2)], axis=1)
    return torch.tensor(table, dtype=torch.float32)


def init_vision_positions(model: Any, scale: float) -> None:
    """Start CLIP's learned position embeddings from a strong 2-D sine-cosine table.

    CLIP initialises them at std 0.02, about 4% of a patch embedding's norm; a tiny model trained for minutes
    then never learns left from right (relation stayed at 50%). Only the initial values change: the model
    saved is a plain LLaVA whose position embeddings stay trainable.
    """
    embeddings = model.model.vision_tower.embeddings
    weight = embeddings.position_embedding.weight
    vision = model.config.vision_config
    grid = vision.image_size // vision.patch_size
    with torch.no_grad():
        weight[1:] = scale * sincos_positions(grid, weight.shape[1]).to(weight.dtype)
        weight[0] = 0


class Batcher:
    """Turns examples into model inputs with the real processor; labels on answer + EOS only."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.grid = IMAGE_SIZE // int(processor.patch_size)
        self._prompt_cache: dict[str, str] = {}

    def prompt(self, question: str) -> str:
        if question not in self._prompt_cache:
            conversation = [
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}
            ]
            self._prompt_cache[question] = self.processor.apply_chat_template(
                conversation, add_generation_prompt=True, tokenize=False
            )
        return self._prompt_cache[question]

    def encode(self, texts: list[str], batch: list[Example]) -> Any:
        """Texts and the examples' views through the real processor, right-padded."""
        images = [[ex.image] for ex in batch]
        return self.processor(
            text=texts, images=images, return_tensors="pt", padding=True, padding_side="right"
        )

    def __call__(self, batch: list[Example]) -> dict[str, torch.Tensor]:
        enc = self.encode(
            [self.prompt(ex.question) + ex.answer + self.tokenizer.eos_token for ex in batch], batch
        )
        labels = torch.full_like(enc["input_ids"], -100)
        lengths = enc["attention_mask"].sum(dim=1)
        for row, length in enumerate(lengths.tolist()):
            labels[row, length - 2 : length] = enc["input_ids"][row, length - 2 : length]
        enc["labels"] = labels
        maps = [ex.patch_colors for ex in batch if ex.patch_colors is not None]
        if len(maps) == len(batch):
            enc["patch_colors"] = torch.as_tensor(np.stack(maps).reshape(len(batch), -1))
        shapes = [ex.patch_shapes for ex in batch if ex.patch_shapes is not None]
        if len(shapes) == len(batch):
            enc["patch_shapes"] = torch.as_tensor(np.stack(shapes).reshape(len(batch), -1))
        xs = [ex.color_x for ex in batch if ex.color_x is not None]
        if len(xs) == len(batch):
            enc["color_x"] = torch.as_tensor(np.stack(xs))
        grid = self.grid
        enc["focus"] = torch.as_tensor(
            np.stack(
                [
                    ex.focus.reshape(-1) if ex.focus is not None else np.zeros(grid * grid, dtype=bool)
                    for ex in batch
                ]
            )
        )
        return dict(enc)
