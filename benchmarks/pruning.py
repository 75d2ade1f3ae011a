"""Visual-token pruning (FasterVLM "cls", FastV "fastv"), measured: ``python -m benchmarks.pruning``.

One run, one machine, CPU. Writes ``docs/benchmarks/pruning.md`` with, for keep 1.0, 0.5, 0.25 and 0.1 and
both methods, as ratios to no pruning:

1. **tiny VLM** (the embedded, trained ``foveate/tiny_vlm/weights``: 64 visual tokens, ~20 text tokens):
   crop-level accuracy on held-out synthetic scenes (seed 7, the crop around the targets at the model's
   native 128 px, as ``foveate.evaluation.fixture.evaluate_fixture`` measures it) in each world of
   ``--worlds``, and prefill time (plain-world scenes);
2. **random LLaVA-576** (random weights, a LLaVA-1.5-shaped prompt: 336 px / patch 14 = 576 visual tokens
   and a short question, so the prompt is ~95% visual tokens; small widths so it runs on CPU): prefill
   time only, since random weights have no accuracy to keep;
3. **random Qwen2-VL** (random weights, Qwen2-VL's architecture: dynamic-resolution ViT with 2x2 token
   merging, Qwen2 decoder with M-RoPE; a 448 x 448 image = 256 visual tokens, ~90% of the prompt; small
   widths so it runs on CPU): prefill time for ``fastv`` only (Qwen2-VL's tower has no [CLS] for ``cls``).

Prefill = one forward pass from pixels to the next-token logits (vision tower included), on inputs the
processor already made; the median over prompts and repeats, configurations interleaved so that machine
noise hits them alike.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from benchmarks import add_worlds_option, worlds_option
from foveate.evaluation.fixture import native_crop
from foveate.synthetic import PLAIN, World, generate_scene
from foveate.testing.tiny_models import LlavaShape, make_llava, make_tiny
from foveate.tiny_vlm import TINY_VLM_PATH
from foveate.vlm import TokenBudget, TokenLedger, TransformersVLM, VLMRequest
from foveate.vlm.pruning import PruneMethod, PruneSpec

KEEPS = (1.0, 0.5, 0.25, 0.1)
METHODS: tuple[PruneMethod, ...] = ("cls", "fastv")
GOAL_KEEP = 0.25
GOAL_ACCURACY = 0.95
GOAL_SPEEDUP = 2.0
# LLaVA-1.5's prompt shape (576 visual tokens) and depth (32 decoder layers, so FastV's K = 2 leaves 30 layers
# to prune, as in the paper), narrow enough for a CPU; the vision tower's share of the compute (~6%) is
# close to LLaVA-1.5-7B's (ViT-L/336 against a 7B language model).
BIG_SHAPE = LlavaShape(
    image_size=336, patch_size=14, hidden=256, heads=4, intermediate=688, vision_layers=2, text_layers=32
)


@dataclass(frozen=True)
class QwenShape:
    """Sizes of the random Qwen2-VL timed here. Defaults: a 448 px square image gives (448 / 28)**2 = 256
    visual tokens; a 512-wide, 8-layer decoder with grouped kv heads (8 query, 2 kv, head_dim 64, M-RoPE
    sections scaled from Qwen2-VL-7B's [16, 24, 24] at head_dim 128) and a 2-block, 128-wide tower."""

    side: int = 448
    hidden: int = 512
    heads: int = 8
    kv_heads: int = 2
    intermediate: int = 1376
    text_layers: int = 8
    vision_width: int = 128
    vision_heads: int = 2
    vision_layers: int = 2
    prompts: int = 4

    @property
    def mrope_section(self) -> list[int]:
        half = self.hidden // self.heads // 2
        return [half // 4, 3 * half // 8, half - half // 4 - 3 * half // 8]


QWEN_SHAPE = QwenShape()

Config = tuple[PruneMethod, float] | None  # (method, keep); None = no pruning


def _name(config: Config) -> str:
    return "none" if config is None else f"{config[0]} keep={config[1]:g}"


def _configs(methods: tuple[PruneMethod, ...] = METHODS) -> list[Config]:
    return [None, *[(m, k) for m in methods for k in KEEPS]]


@dataclass
class Timing:
    median_s: float
    visual: int  # visual tokens charged per prompt


def crop_accuracy(
    vlm: TransformersVLM, n: int, seed: int, layer: int, world: World = PLAIN
) -> dict[Config, float]:
    """Crop accuracy per configuration, every configuration on the same n held-out scenes of ``world``."""
    hits: dict[Config, int] = dict.fromkeys(_configs(), 0)
    for index in range(n):
        image, item = generate_scene(seed, index, world=world)
        crop = native_crop(image, item, 128)
        request = VLMRequest.from_prompt(item.question, [crop])
        for config in hits:
            budget = (
                TokenBudget() if config is None else TokenBudget(prune=config[0], keep=config[1], layer=layer)
            )
            best = vlm.score(request, item.options, TokenLedger(budget)).best
            hits[config] += best == item.answer
    return {config: count / n for config, count in hits.items()}


def prefill_times(
    vlm: TransformersVLM,
    prompts: list[tuple[str, Image.Image]],
    repeats: int,
    layer: int,
    methods: tuple[PruneMethod, ...] = METHODS,
) -> dict[Config, Timing]:
    """Median prefill time per configuration over ``prompts`` x ``repeats``, configurations interleaved."""
    encoded = [
        vlm.encode([vlm.render(VLMRequest.from_prompt(q, [img]))], [[img]], "right") for q, img in prompts
    ]
    inputs = [vlm.to_device(enc.inputs) for enc in encoded]
    samples: dict[Config, list[float]] = {c: [] for c in _configs(methods)}
    visual: dict[Config, int] = {}

    def run(config: Config, batch: dict[str, Any]) -> int:
        with torch.inference_mode():
            if config is None:
                vlm.model(**batch, logits_to_keep=1, use_cache=False)
                return int((batch["input_ids"] == vlm.image_token_id).sum())
            _, state = vlm.pruner.logits(batch, PruneSpec(config[0], config[1], layer), 1)
            return state.computed_visual[0]

    for config in samples:  # warm-up
        run(config, inputs[0])
    for _ in range(repeats):
        for batch in inputs:
            for config in samples:
                start = time.perf_counter()
                visual[config] = run(config, batch)
                samples[config].append(time.perf_counter() - start)
    return {c: Timing(statistics.median(s), visual[c]) for c, s in samples.items()}


def _big_llava(folder: Path) -> TransformersVLM:
    model, processor = make_llava(seed=0, shape=BIG_SHAPE)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return TransformersVLM(folder, device="cpu")


def _random_qwen2vl(folder: Path, shape: QwenShape) -> TransformersVLM:
    """A random-weight Qwen2-VL of ``shape``, with the tiny Qwen2-VL's tokenizer and processor (its image
    processor re-made to let a ``shape.side`` px square image through unshrunk), saved and reloaded."""
    from transformers import (
        PaddleOCRVLProcessor,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    tiny, tiny_processor = make_tiny("qwen2_vl", seed=0)
    tokenizer = tiny_processor.tokenizer  # type: ignore[attr-defined]
    text = tiny.config.text_config
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": text.vocab_size,
            "hidden_size": shape.hidden,
            "intermediate_size": shape.intermediate,
            "num_hidden_layers": shape.text_layers,
            "num_attention_heads": shape.heads,
            "num_key_value_heads": shape.kv_heads,
            "max_position_embeddings": 4096,
            "max_window_layers": shape.text_layers,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                "mrope_section": shape.mrope_section,
            },
            "bos_token_id": text.bos_token_id,
            "eos_token_id": text.eos_token_id,
            "pad_token_id": text.pad_token_id,
        },
        vision_config={
            "depth": shape.vision_layers,
            "embed_dim": shape.vision_width,
            "hidden_size": shape.hidden,  # the merger's output is the decoder's width
            "mlp_ratio": 4,
            "num_heads": shape.vision_heads,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=tiny.config.image_token_id,
        video_token_id=tiny.config.video_token_id,
        vision_start_token_id=tiny.config.vision_start_token_id,
        vision_end_token_id=tiny.config.vision_end_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(config).eval()
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=56 * 56,
        max_pixels=shape.side * shape.side,
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )
    processor = PaddleOCRVLProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tiny_processor.chat_template
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return TransformersVLM(folder, device="cpu")


def qwen2vl_prefill(
    scenes: list[tuple[Image.Image, Any]], repeats: int, shape: QwenShape = QWEN_SHAPE
) -> tuple[dict[Config, Timing], int, int]:
    """FastV prefill times on a random Qwen2-VL of ``shape``, each scene squashed to a ``shape.side`` px
    square; also the prompt's text tokens and the model's parameter count."""
    with tempfile.TemporaryDirectory() as folder:
        vlm = _random_qwen2vl(Path(folder), shape)
        prompts = [
            (f"Is there a {item.targets[0].color} shape? Answer Yes or No.", image.resize((shape.side,) * 2))
            for image, item in scenes[: shape.prompts]
        ]
        times = prefill_times(vlm, prompts, repeats, layer=2, methods=("fastv",))
        enc = vlm.encode(
            [vlm.render(VLMRequest.from_prompt(prompts[0][0], [prompts[0][1]]))], [[prompts[0][1]]], "right"
        )
        params = sum(p.numel() for p in vlm.model.parameters())
    return times, enc.lengths[0] - enc.visual[0], params


def _table(
    title: str,
    times: dict[Config, Timing],
    accuracy: dict[str, dict[Config, float]] | None,
    text_tokens: int,
) -> list[str]:
    """A model's timing table; with ``accuracy`` (per world name), each world's crop accuracy and ratio."""
    base = times[None]
    head = "| configuration | visual tokens charged | prefill ms | speedup |"
    rule = "|---|---|---|---|"
    for world in accuracy or {}:
        head += f" crop accuracy, {world} world | accuracy ratio, {world} world |"
        rule += "---|---|"
    lines = [f"### {title}", "", f"Text tokens per prompt: {text_tokens}.", "", head, rule]
    for config, timing in times.items():
        row = (
            f"| {_name(config)} | {timing.visual} | {timing.median_s * 1000:.1f} | "
            f"{base.median_s / timing.median_s:.2f}x |"
        )
        for acc in (accuracy or {}).values():
            row += f" {acc[config]:.3f} | {acc[config] / max(acc[None], 1e-9):.3f} |"
        lines.append(row)
    return [*lines, ""]


def _met(flag: bool) -> str:
    return "yes" if flag else "**no**"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="held-out scenes for accuracy")
    parser.add_argument("--seed", type=int, default=7)
    add_worlds_option(parser)
    parser.add_argument("--timing-prompts", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable timings on a shared machine)"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/pruning.md"))
    args = parser.parse_args(argv)
    worlds: list[World] = args.worlds
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    tiny = TransformersVLM(TINY_VLM_PATH, device="cpu")
    accuracy = {w.name: crop_accuracy(tiny, args.n, args.seed, layer=2, world=w) for w in worlds}
    scenes = [generate_scene(args.seed, i, world=PLAIN) for i in range(args.timing_prompts)]
    tiny_prompts = [(item.question, native_crop(image, item, 128)) for image, item in scenes]
    tiny_times = prefill_times(tiny, tiny_prompts, args.repeats, layer=2)
    tiny_text = tiny.encode(
        [tiny.render(VLMRequest.from_prompt(tiny_prompts[0][0], [tiny_prompts[0][1]]))],
        [[tiny_prompts[0][1]]],
        "right",
    )

    with tempfile.TemporaryDirectory() as folder:
        big = _big_llava(Path(folder))
        big_prompts = [
            (f"Is there a {item.targets[0].color} shape? Answer Yes or No.", image) for image, item in scenes
        ]
        big_times = prefill_times(big, big_prompts, args.repeats, layer=2)
        big_enc = big.encode(
            [big.render(VLMRequest.from_prompt(big_prompts[0][0], [big_prompts[0][1]]))],
            [[big_prompts[0][1]]],
            "right",
        )
        big_params = sum(p.numel() for p in big.model.parameters())
    qwen_times, qwen_text, qwen_params = qwen2vl_prefill(scenes, args.repeats)

    command = (
        f"python -m benchmarks.pruning --n {args.n} --timing-prompts {args.timing_prompts} "
        f"--repeats {args.repeats} --threads {args.threads}"
    )
    command += ("" if args.seed == parser.get_default("seed") else f" --seed {args.seed}") + worlds_option(
        worlds
    )
    names = ", ".join(accuracy)
    lines = [
        "# Visual-token pruning: accuracy kept and prefill time saved",
        "",
        f"Produced by `{command}` in {time.perf_counter() - started:.0f} s on CPU "
        f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, a machine "
        "shared with other jobs), one run. No GPU was used (none was lent to this task), so the GPU sweep of "
        "the issue (a Qwen2-VL-7B-shaped model at 1024 and 2048 px) is not done. FastV is implemented for "
        "Qwen2-VL and Qwen2.5-VL (M-RoPE positions kept); its CPU prefill time on a random Qwen2-VL is the "
        "last table.",
        "",
        "Methods: `cls` = FasterVLM (keep the patches the vision tower's [CLS] attends to most, before the",
        "language model); `fastv` = FastV with K = 2 (the first 2 decoder layers see every token, the rest",
        "the kept ones, ranked by the last prompt token's attention in layer 2). `keep` is the fraction of",
        "visual tokens kept (ceil(keep x N)). Visual tokens charged is what the ledger records per prompt:",
        "the kept tokens for `cls`, the layer-averaged count for `fastv`. Speedup is unpruned prefill time",
        "over pruned prefill time, both including the vision tower.",
        "",
        f"Worlds: the tiny VLM's crop accuracy is measured in each of {names} (the same targets and",
        "questions; the harder world adds saturated distractors and photograph or texture backgrounds, some",
        f"of them inside the crop). Every timing is on {PLAIN.name}-world scenes only, whatever `--worlds`",
        "says (pruning's cost does not depend on what the image shows).",
        "",
    ]
    acc_at_goal = {
        w: {m: acc[(m, GOAL_KEEP)] / max(acc[None], 1e-9) for m in METHODS} for w, acc in accuracy.items()
    }
    speed_at_goal = {m: big_times[None].median_s / big_times[(m, GOAL_KEEP)].median_s for m in METHODS}
    lines += [
        f"## Goal at keep = {GOAL_KEEP}",
        "",
        "| method | "
        + "".join(f"accuracy ratio (tiny VLM, {w} world) | goal | met | " for w in accuracy)
        + "prefill speedup (random LLaVA-576) | goal | met |",
        "|---|" + "---|---|---|" * len(accuracy) + "---|---|---|",
    ]
    for m in METHODS:
        cells = [
            f"{at[m]:.3f} | >= {GOAL_ACCURACY} | {_met(at[m] >= GOAL_ACCURACY)}"
            for at in acc_at_goal.values()
        ]
        lines.append(
            f"| {m} | "
            + "".join(f"{c} | " for c in cells)
            + f"{speed_at_goal[m]:.2f}x | >= {GOAL_SPEEDUP:g}x | {_met(speed_at_goal[m] >= GOAL_SPEEDUP)} |"
        )
    lines += [
        "",
        "The accuracy goal is judged on the tiny VLM (the only model here with trained weights); the speed",
        "goal on the random LLaVA-576, whose prompt is mostly visual tokens as the goal asks. The tiny VLM's",
        "own speedup is in its table: with 64 visual tokens in a 4-layer, 128-wide model, fixed per-call",
        "costs weigh more.",
        "",
        "## Rows",
        "",
        *_table(
            f"tiny VLM (trained, LLaVA architecture, 64 visual tokens; accuracy on {args.n} held-out scenes "
            f"per world; timing on {PLAIN.name}-world crops)",
            tiny_times,
            accuracy,
            tiny_text.lengths[0] - tiny_text.visual[0],
        ),
        *_table(
            f"random LLaVA-576 (random weights; CLIP {BIG_SHAPE.vision_layers} layers + Llama "
            f"{BIG_SHAPE.text_layers} layers, {BIG_SHAPE.hidden} wide, {big_params / 1e6:.1f}M parameters; "
            f"latency only; {PLAIN.name}-world scenes)",
            big_times,
            None,
            big_enc.lengths[0] - big_enc.visual[0],
        ),
        *_table(
            f"random Qwen2-VL (random weights; ViT {QWEN_SHAPE.vision_layers} blocks, "
            f"{QWEN_SHAPE.vision_width} wide + Qwen2 {QWEN_SHAPE.text_layers} layers with M-RoPE, "
            f"{QWEN_SHAPE.hidden} wide, {QWEN_SHAPE.heads} query / {QWEN_SHAPE.kv_heads} kv heads, "
            f"{qwen_params / 1e6:.1f}M parameters; {QWEN_SHAPE.side} px image, "
            f"{QWEN_SHAPE.prompts} prompts; fastv only; latency only; {PLAIN.name}-world scenes)",
            qwen_times,
            None,
            qwen_text,
        ),
        "keep = 1.0 runs the pruning code path without dropping anything (its outputs equal the unpruned",
        "ones, tested), so its time shows the path's own overhead.",
        "",
        "## Reading the numbers",
        "",
        "- The tiny VLM's vision tower was trained from scratch through LLaVA, which drops the [CLS]",
        "  token's output: the attention [CLS] pays in the feature layer only shapes that dropped output, so",
        "  it never entered a training loss and `cls` ranks patches by an untrained signal here. FasterVLM",
        "  relies on CLIP's contrastively trained [CLS]; this model says little about a real LLaVA-1.5.",
        "- FastV's saving is bounded by K / depth: the first K layers still see every token. The tiny VLM",
        "  has 4 layers (K = 2 leaves half the model unpruned); the random LLaVA-576 has LLaVA-1.5's 32;",
        f"  the random Qwen2-VL has {QWEN_SHAPE.text_layers} (Qwen2-VL-7B has 28), so K = 2 leaves a quarter "
        "unpruned and",
        "  its speedups understate what the same keep saves at full depth.",
        "- The tiny VLM's prompt is short (64 visual tokens, 4 narrow layers): per-call overheads (processor",
        "  outputs, Python, the vision tower) are a large part of its prefill, so its speedups are small.",
        "- Timings use one torch thread: on this 2-core machine shared with other jobs, two threads made",
        "  single calls vary by two orders of magnitude.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
