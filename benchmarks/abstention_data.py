"""What ``benchmarks.abstention`` measures on: the workflows' answers to labelled scenes, cached honestly.

Every answer comes from ``Agent.ask`` on a built-in workflow (no gate, no memory), exactly as a user's
agent answers and as ``foveate calibrate`` collects: ``direct`` (the whole image) and ``zoom`` (the fast
search, then the answer from the crop), each asked once with the options and once without them (a
free-text answer, judged by ``foveate.conformal.matching.matches``, with its sequence confidence).

The cache (``--cache``) stores a hash of the weights and of the code that answered (this file and the
``foveate`` packages on the answering path); a cache made by anything else is refused, naming the
difference. The statistics live in ``benchmarks/abstention.py`` and may change without a rescore.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks import sources_sha256, weights_sha256
from foveate.agent import Agent
from foveate.conformal.matching import matches
from foveate.synthetic import PLAIN, World, generate_scene
from foveate.vlm.base import VLM

__all__ = ["MODES", "K", "Stream", "code_sha256", "collect", "load_or_collect"]

K = 4
"""Options per row: relation questions (2 options) are padded with zero-probability options."""
MODES = {"whole image": "direct", "post-zoom": "zoom"}
"""Page name -> built-in workflow."""
ANSWERING = (
    "zoom",
    "vlm",
    "imaging",
    "synthetic",
    "graphs",
    "tiny_vlm",
    "evaluation",
    "agent.py",
    "conformal/matching.py",
)


@dataclass(frozen=True)
class Stream:
    """Which scenes: a seed, how many, their image and target sides, and the world."""

    name: str
    seed: int
    n: int
    sizes: tuple[int, int] = (1536, 2048)
    targets: tuple[int, int] = (10, 60)
    world: World = PLAIN
    free_text: bool = True

    def describe(self) -> str:
        return (
            f"{self.n} scenes, seed {self.seed}, {self.world.name} world, {self.sizes[0]}-{self.sizes[1]} px "
            f"images, {self.targets[0]}-{self.targets[1]} px targets"
        )


def code_sha256() -> str:
    """This file and the foveate code an answer passes through."""
    import foveate

    root = Path(foveate.__file__).parent
    files = [Path(__file__)] + [root / p for p in ANSWERING if p.endswith(".py")]
    return sources_sha256(files, [p for p in ANSWERING if not p.endswith(".py")])


def collect(vlm: VLM, stream: Stream) -> dict[str, np.ndarray]:
    """Per mode: padded (n, K) option probabilities and, with ``free_text``, each free answer's confidence
    (NaN: none given) and correctness; the true option indices, option counts and categories."""
    agents = {mode: Agent(vlm, workflow=flow, memory=None, checkpoints=None) for mode, flow in MODES.items()}
    n = stream.n
    out: dict[str, np.ndarray] = {f"probs/{m}": np.zeros((n, K)) for m in MODES}
    if stream.free_text:
        out |= {f"conf/{m}": np.full(n, np.nan) for m in MODES}
        out |= {f"right/{m}": np.zeros(n, bool) for m in MODES}
    labels, options, categories = np.zeros(n, int), np.zeros(n, int), []
    try:
        for i in range(n):
            image, item = generate_scene(
                stream.seed, i, size_range=stream.sizes, target_size_range=stream.targets, world=stream.world
            )
            if i % 20 == 0:
                print(f"{stream.name}: scene {i}/{n}", file=sys.stderr, flush=True)
            for mode, agent in agents.items():
                scored = agent.ask(item.question, image=image, options=item.options)
                p = np.asarray(scored.option_scores, dtype=np.float64)
                out[f"probs/{mode}"][i, : p.size] = p / p.sum()
                if stream.free_text:
                    said = agent.ask(item.question, image=image)
                    if said.confidence is not None:
                        out[f"conf/{mode}"][i] = said.confidence
                    out[f"right/{mode}"][i] = said.text is not None and matches(said.text, item.answer)
            labels[i], options[i] = item.answer_index, len(item.options)
            categories.append(item.category)
    finally:
        for agent in agents.values():
            agent.close()
    return out | {"labels": labels, "options": options, "categories": np.array(categories)}


def load_or_collect(
    cache: Path | None, vlm_factory: object, model: Path, streams: list[Stream]
) -> tuple[dict[str, dict[str, np.ndarray]], float]:
    """Each stream's arrays (from ``cache`` when it was made by these weights, this code and these streams;
    refused with the difference otherwise) and the seconds collecting took."""
    import time

    weights = weights_sha256(model)
    described = [s.describe() for s in streams]
    if cache is not None and cache.exists():
        stored = dict(np.load(cache))
        checks = {
            "weights (model.safetensors sha256)": (str(stored.get("model_sha256")), weights),
            "answering code (benchmarks/abstention_data.py and foveate's answering path)": (
                str(stored.get("code_sha256")),
                code_sha256(),
            ),
            "scenes": (" | ".join(str(s) for s in stored.get("streams", [])), " | ".join(described)),
        }
        for what, (held, now) in checks.items():
            if held != now:
                raise SystemExit(
                    f"{cache} was made with other {what}: it holds {held!r}, now {now!r}; delete it"
                )
        data = {
            s.name: {k.split("/", 1)[1]: v for k, v in stored.items() if k.startswith(f"{s.name}/")}
            for s in streams
        }
        return data, float(stored["collect_s"])
    assert callable(vlm_factory)
    code = code_sha256()  # of the code that answers, taken before it runs
    vlm = vlm_factory()
    start = time.perf_counter()
    data = {s.name: collect(vlm, s) for s in streams}
    collect_s = time.perf_counter() - start
    if cache is not None:
        arrays = {f"{name}/{k}": v for name, d in data.items() for k, v in d.items()}
        arrays |= {
            "model_sha256": np.array(weights),
            "code_sha256": np.array(code),
            "streams": np.array(described),
            "collect_s": np.array(collect_s),
        }
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, **arrays)  # type: ignore[arg-type]  # numpy stubs: allow_pickle
    return data, collect_s
