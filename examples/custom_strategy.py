"""Write your own zoom strategy, register it, and use it from Python and from a workflow YAML.

    .venv/bin/python examples/custom_strategy.py

``ExistenceFirst`` walks ZoomEye's image tree with foveate's best-first loop (``TreeSearch``) and changes
one step: each child of a popped node gets a single probe -- "is the object clearly visible here?" -- and
that confidence is its priority. ZoomEye asks two probes per child (existence and latent) and ``fast``
ranks by a latent or existence probe depending on depth; this is the plainest rule, a baseline of your own.

A strategy needs a name, whether it wants the question's cues, ``search`` and ``worst_case_probes`` (the
budget planner sizes searches by it). It spends only through the ``SearchContext`` it is given, so every
probe is counted against the question's caps. Nothing here touches foveate's own files: the strategy is
registered on a copy of the built-in registry. Runs offline on the embedded tiny VLM.
"""

from __future__ import annotations

from typing import ClassVar

from foveate import Agent
from foveate.synthetic import generate_scene
from foveate.vlm import load_vlm
from foveate.zoom import (
    Expansion,
    SearchContext,
    TreeNode,
    TreeSearch,
    ZoomAgent,
    ZoomConfig,
    builtin_strategies,
    wording_cues,
)


class ExistenceFirst(TreeSearch):
    """Best-first over the image tree; a child's priority is its existence probe alone."""

    name: ClassVar[str] = "existence_first"

    def expand(
        self,
        ctx: SearchContext,
        node: TreeNode,
        kids: list[TreeNode],
        cue: str,
        stop_prompt: str,
        max_depth: int,
        rank_by_stop: bool,
    ) -> Expansion:
        prompt = ctx.prompts.existence.format(o=cue)
        scores = ctx.probe([k.box for k in kids], [[prompt]] * len(kids))  # one batched call, metered
        pending: Expansion = []
        for kid, (existence,) in zip(kids, scores, strict=True):
            ctx.visit(cue, kid.box, kid.depth, None, existence=existence, priority=existence)
            pending.append((existence, kid, None))  # no stop confidence yet: asked when it is popped
        return pending

    def worst_case_probes(self, depth: int, max_pops: int | None = None, children: int = 4) -> int:
        """``3 * depth`` pops before ZoomEye's relaxation, each the node's stop probe plus one per child."""
        return 3 * max(1, depth) * (1 + children)


WORKFLOW = """\
name: existence-first
start: perceive
nodes:
  perceive: {uses: perceive}
  zoom:     {uses: zoom, params: {strategy: existence_first}}
  reason:   {uses: reason}
edges:
  - {from: perceive, to: zoom}
  - {from: zoom, to: reason}
  - {from: reason, to: END}
"""


def main() -> None:
    strategies = builtin_strategies()  # a fresh registry: yours to extend
    strategies.register(ExistenceFirst())
    print(f"strategies: {', '.join(strategies.names())}")

    vlm = load_vlm()  # the embedded tiny VLM, on the CPU
    right = {"existence_first": 0, "zoomeye": 0, "direct": 0}
    probes = dict.fromkeys(right, 0)
    scenes = 6
    for index in range(scenes):
        image, item = generate_scene(seed=11, index=index)
        cues = wording_cues(item.question)  # the tiny VLM cannot list cues itself
        for name in right:
            agent = ZoomAgent(vlm, ZoomConfig(strategy=name), strategies=strategies)
            result = agent.run(image, item.question, item.options, cues=cues)
            right[name] += result.answer == item.answer
            probes[name] += result.probes
    for name in right:
        print(f"{name}: {right[name]}/{scenes} right, {probes[name] / scenes:.1f} probes per question")

    # the same strategy from a workflow file: the agent's registry is the one its zoom nodes look in;
    # perceive reads the cues off the question's wording for a model that cannot list them
    image, item = generate_scene(seed=11, index=0)
    with Agent(vlm, workflow=_workflow_file(), memory=None, strategies=strategies) as agent:
        answer = agent.ask(item.question, image=image, options=item.options)
    print(f"workflow answer: {answer.option} (right: {item.answer}); {answer.probes} probes")
    print("trace: " + " | ".join(answer.trace))


def _workflow_file() -> str:
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp(prefix="foveate-strategy-")) / "existence_first.yaml"
    path.write_text(WORKFLOW)
    return str(path)


if __name__ == "__main__":
    main()
