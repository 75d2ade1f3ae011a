"""Can the model's probes rank the image tree's nodes? The measurement a zoom search stands on.

A search ranks a level of the image tree by one probe per node (``fast``: latent above two native sides,
existence from there on; ``zoomeye``: both) and walks into the best. The fixture page measures the probes on
crops around the targets; this page measures them where the search uses them: for every cue of a question and
every tree level from 1 to 3 (4, 16 and 64 nodes), the rank, among all the level's nodes, of the node that
holds the cue's target (its centre), under the latent and the existence probe, asked through
``SearchContext.probe`` exactly as the search asks (the same views, the same prompts).

An attribute question's cue is its bare shape ("star"), which names the target *and* any same-shape
distractor of the harder world; the rows "answer-qualified" ask for the target by its answer's colour too
("red star"): what a search that knew the colour could reach, a bound and not a strategy (the answer is what
the question asks).

    python -m benchmarks.search_probes                       # seeds 21-23, 50 scenes each, both worlds
    python -m benchmarks.search_probes --model .candidates/S6 --seeds 7 --tuning --out /tmp/s6.md
"""

from __future__ import annotations

import argparse
import platform
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks import add_worlds_option, worlds_option, write_page
from benchmarks.zoom import EVAL_SEEDS, TUNING_SEEDS
from foveate.evaluation.report import bootstrap_interval
from foveate.synthetic import World, generate_scene
from foveate.tiny_vlm import TINY_VLM_PATH, model_label
from foveate.vlm.budget import TokenLedger
from foveate.vlm.transformers_vlm import TransformersVLM
from foveate.zoom import ZoomAgent, ZoomConfig, wording_cues
from foveate.zoom.context import SearchContext
from foveate.zoom.meter import Meter
from foveate.zoom.tree import TreeNode

LEVELS = (1, 2, 3)
"""Tree levels measured: 4, 16 and 64 nodes of a square image (``fast`` ranks level 2 of the default
1536-2048 px scenes first; existence takes over at level 3, views of at most two native sides)."""


@dataclass(frozen=True)
class Key:
    """One row: a world, a question category, which cue, a tree level, a probe."""

    world: str
    category: str
    cue: str  # "wording" | "answer-qualified"
    level: int
    probe: str  # "latent" | "existence"


def level_nodes(width: int, height: int, level: int) -> list[TreeNode]:
    """Every node of the image tree ``level`` levels down (``4 ** level`` of them)."""
    nodes = [TreeNode((0, 0, width, height), 0)]
    for _ in range(level):
        nodes = [child for node in nodes for child in node.expand()]
    return nodes


def holding(nodes: Sequence[TreeNode], center: tuple[float, float]) -> int:
    """The index of the node whose box holds ``center`` (children tile their parent exactly)."""
    x, y = center
    return next(i for i, n in enumerate(nodes) if n.box[0] <= x < n.box[2] and n.box[1] <= y < n.box[3])


def measure(
    agent: ZoomAgent, world: World, seed: int, n: int, ranks: dict[Key, list[int]], levels: Sequence[int]
) -> None:
    """Append the target node's rank (0: ranked first) for every cue, level and probe of ``n`` scenes."""
    prompts = agent.prompts
    for index in range(n):
        image, item = generate_scene(seed, index, world=world)
        ctx = SearchContext(
            agent.vlm, agent.config, prompts, agent.native_side, image, Meter(None, None, TokenLedger())
        )
        cues = wording_cues(item.question)
        asked = [("wording", cue, target) for cue, target in zip(cues, item.targets, strict=True)]
        if item.category == "attribute":
            asked.append(("answer-qualified", f"{item.answer} {cues[0]}", item.targets[0]))
        for label, cue, target in asked:
            for level in levels:
                nodes = level_nodes(image.width, image.height, level)
                true = holding(nodes, target.center)
                for probe, template in (("latent", prompts.latent), ("existence", prompts.existence)):
                    question = template.format(o=cue)
                    answers = ctx.probe([x.box for x in nodes], [[question]] * len(nodes))
                    confs = np.array([c for (c,) in answers])
                    key = Key(world.name, item.category, label, level, probe)
                    ranks[key].append(int((confs > confs[true]).sum()))


def table(ranks: dict[Key, list[int]], world: str) -> list[str]:
    lines = [
        "| category | cue | level (nodes) | probe | target's node ranked first [95% interval] | in the top 3 "
        "| median rank | cues |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted((k for k in ranks if k.world == world), key=lambda k: (k.category, k.cue, k.level)):
        r = np.array(ranks[key])
        first = (r == 0).astype(float)
        lo, hi = bootstrap_interval(first.tolist())
        lines.append(
            f"| {key.category} | {key.cue} | {key.level} ({4**key.level}) | {key.probe} | {first.mean():.2f} "
            f"[{lo:.2f}, {hi:.2f}] | {(r < 3).mean():.2f} | {np.median(r):.0f} | {len(r)} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="scenes per seed and world")
    parser.add_argument("--seeds", default=",".join(map(str, EVAL_SEEDS)))
    parser.add_argument("--tuning", action="store_true", help="allow the tuning seeds (7, 8)")
    add_worlds_option(parser)
    parser.add_argument("--model", type=Path, default=TINY_VLM_PATH)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/search_probes.md"))
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not args.tuning and set(seeds) & set(TUNING_SEEDS):
        parser.error(f"--seeds {args.seeds} holds tuning seeds {TUNING_SEEDS}: pass --tuning")
    worlds: list[World] = args.worlds
    torch.set_num_threads(args.threads)
    agent = ZoomAgent(TransformersVLM(args.model, device="cpu"), ZoomConfig())
    start = time.perf_counter()
    ranks: dict[Key, list[int]] = defaultdict(list)
    for world in worlds:
        for seed in seeds:
            measure(agent, world, seed, args.n, ranks, LEVELS)
    wall = time.perf_counter() - start

    command = "python -m benchmarks.search_probes"
    if args.n != 50:
        command += f" --n {args.n}"
    if seeds != list(EVAL_SEEDS):
        command += f" --seeds {args.seeds}" + (" --tuning" if args.tuning else "")
    command += worlds_option(worlds)
    if args.model.resolve() != TINY_VLM_PATH.resolve():
        command += f" --model {args.model}"
    lines = [
        "# Probes where the search uses them: ranking the image tree's nodes",
        "",
        f"Produced by `{command}` with `{model_label(args.model)}` on CPU ({platform.machine()}, "
        f"{args.threads} threads), {wall:.0f} s. Seeds {', '.join(map(str, seeds))}, {args.n} scenes each "
        "(the zoom page's `default` scenes: 1536-2048 px, targets 10-60 px). For each cue and tree level, "
        "the rank of the node holding the cue's target among all the level's nodes, under each probe; ties "
        "count for the target. Intervals: 95% bootstrap over cues. What the rows mean and why the page "
        "exists: the module docstring of `benchmarks/search_probes.py`.",
        "",
    ]
    for world in worlds:
        lines += [f"## {world.name} world", "", *table(ranks, world.name), ""]
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
