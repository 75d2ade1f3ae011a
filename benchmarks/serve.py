"""``foveate serve`` throughput on the tiny VLM: ``python -m benchmarks.serve``.

A live server (the FastAPI app of ``foveate serve``, under uvicorn, in this process) answers the same
questions sent one at a time and then all at once by the OpenAI Python client. Questions: synthetic scenes
of the plain world (seed 33: not a zoom tuning seed, 7 and 8), workflow ``zoom`` with its shipped gate, no
memory; the agent shares forward passes between concurrent questions (``Agent(coalesce=True)``, as
``foveate serve`` does). Wall time counts from the first request to the last reply; the two ways alternate
over ``--repeats`` rounds so that a slow spell of a shared machine falls on both. Every reply's chosen
option is compared with the one-at-a-time reply. Writes ``docs/benchmarks/serve.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import openai
import torch

from benchmarks import write_page
from foveate.agent import Agent
from foveate.imaging import to_data_uri
from foveate.server import ServerLimits, create_app
from foveate.synthetic import generate_scene
from foveate.testing.live_server import live
from foveate.tiny_vlm import TINY_VLM_PATH, model_label
from foveate.vlm.transformers_vlm import TransformersVLM


def _request(question: str, options: list[str], url: str) -> dict[str, Any]:
    content = [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": url}}]
    return {
        "messages": [{"role": "user", "content": content}],
        "extra_body": {"foveate": {"options": options}},
    }


async def _ask_all(
    base: str, requests: list[dict[str, Any]], at_once: bool
) -> tuple[float, list[str | None]]:
    client = openai.AsyncOpenAI(base_url=base, api_key="bench", max_retries=0, timeout=600)

    async def one(request: dict[str, Any]) -> str | None:
        reply = await client.chat.completions.create(model="foveate-zoom", **request)
        return (reply.model_extra or {})["foveate"]["option"]

    start = time.perf_counter()
    if at_once:
        chosen = list(await asyncio.gather(*(one(r) for r in requests)))
    else:
        chosen = [await one(r) for r in requests]
    return time.perf_counter() - start, chosen


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n", type=int, default=32, help="questions (scenes of seed --seed), all sent at once"
    )
    parser.add_argument("--seed", type=int, default=33, help="scene seed (not a zoom tuning seed: 7, 8)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks/serve.md"))
    args = parser.parse_args(argv)

    vlm = TransformersVLM(TINY_VLM_PATH, device="cpu")
    agent = Agent(vlm, workflow="zoom", memory=None, checkpoints=None, coalesce=True)
    app = create_app({"foveate-zoom": agent}, ServerLimits(max_concurrency=args.n))
    requests = []
    for index in range(args.n):
        image, item = generate_scene(args.seed, index, size_range=(1536, 2048))
        requests.append(_request(item.question, list(item.options), to_data_uri(image)))

    walls: dict[str, list[float]] = {"one at a time": [], f"{args.n} at once": []}
    answered: dict[str, int] = {}
    same: dict[str, int] = {}
    reference: list[str | None] | None = None
    try:
        with live(app) as base:
            for round_no in range(args.repeats):
                order = [False, True] if round_no % 2 == 0 else [True, False]
                for at_once in order:
                    name = f"{args.n} at once" if at_once else "one at a time"
                    wall, chosen = asyncio.run(_ask_all(base, requests, at_once))
                    print(f"round {round_no}: {name}: {wall:.1f} s", flush=True)
                    walls[name].append(wall)
                    answered[name] = min(answered.get(name, args.n), sum(c is not None for c in chosen))
                    if not at_once and reference is None:
                        reference = chosen
                    if reference is not None:
                        agree = sum(a == b for a, b in zip(chosen, reference, strict=True))
                        same[name] = min(same.get(name, args.n), agree)
    finally:
        agent.close()

    one = np.array(walls["one at a time"])
    lines = [
        "# `foveate serve` throughput: questions at once through the OpenAI API, on the tiny VLM",
        "",
        f"Command: `python -m benchmarks.serve --n {args.n} --seed {args.seed} --repeats {args.repeats}`",
        "",
        f"Model: {model_label(TINY_VLM_PATH)} on CPU. Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads. The server (FastAPI under "
        "uvicorn, the app `foveate serve` runs) and the OpenAI client share the machine. "
        f"{args.n} questions of the plain world (seed {args.seed}, 1536-2048 px scenes, sent as PNG data "
        "URIs), workflow `zoom` with its shipped gate, no memory, forward passes shared between concurrent "
        "questions (`Agent(coalesce=True)`). Wall time from the first request to the last reply, each way "
        f"once per round, {args.repeats} rounds in alternating order.",
        "",
        "| requests | wall s per round | questions / s (mean) | x one at a time (per round: min-max) | "
        "replies with an option | same option as one at a time |",
        "|---|---|---|---|---|---|",
    ]
    for name, times in walls.items():
        w = np.array(times)
        ratio = one / w
        lines.append(
            f"| {name} | {', '.join(f'{x:.1f}' for x in w)} | {np.mean(args.n / w):.2f} | "
            f"{ratio.mean():.2f} ({ratio.min():.2f}-{ratio.max():.2f}) | {answered[name]}/{args.n} | "
            f"{same[name]}/{args.n} |"
        )
    lines.append("")
    write_page(args.out, lines)


if __name__ == "__main__":
    main()
