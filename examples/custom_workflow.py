"""Run your own workflow YAML: validate it, draw it, answer questions with it, watch each node.

    .venv/bin/python examples/custom_workflow.py [WORKFLOW.yaml]

The workflow (``custom_workflow.yaml`` next to this file by default) zooms, answers, and when the answer
is unsure searches again with a more thorough strategy before the conformal gate. Runs offline on the
embedded tiny VLM. The YAML format is documented in ``docs/workflows.md``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from foveate import Agent
from foveate.errors import GraphSpecError
from foveate.graphs.mermaid import to_mermaid
from foveate.graphs.nodes import builtin_registry
from foveate.graphs.spec import load_workflow
from foveate.synthetic import generate_scene
from foveate.vlm import load_vlm

HERE = Path(__file__).resolve().parent


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "custom_workflow.yaml"

    # 1. Validate against the built-in node types and conditions (what `foveate graph show` does).
    #    Every problem is reported as FILE:LINE: message before any model is loaded.
    try:
        spec, _ = load_workflow(path, builtin_registry())
    except GraphSpecError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"workflow {spec.name!r}: {len(spec.nodes)} nodes, start at {spec.start!r}", end="")
    print(f", max {spec.max_steps} steps")

    # 2. Draw it: paste into https://mermaid.live or a Markdown file that renders Mermaid.
    print(to_mermaid(spec))

    # A broken copy, to show what a mistake looks like: the judge's threshold must be in [0, 1].
    with tempfile.TemporaryDirectory() as tmp:
        broken = Path(tmp) / "broken.yaml"
        broken.write_text(path.read_text().replace("threshold: 0.8", "threshold: 1.5"))
        try:
            load_workflow(broken, builtin_registry())
        except GraphSpecError as exc:
            print(f"a broken copy is rejected: {exc}")

    # 3. Run it. `workflow=` takes a built-in name (direct, zoom, full), a YAML path or a WorkflowSpec.
    vlm = load_vlm()  # the embedded tiny VLM, on the CPU
    with Agent(vlm, workflow=path, memory=None) as agent:
        for index in (0,):  # add more scenes here; in scene 0 the first search is unsure: the judge retries
            image, item = generate_scene(seed=7, index=index)
            print(f"\nQ: {item.question} {item.options}")
            run_id = None
            for event in agent.stream(item.question, image=image, options=item.options):
                run_id = event.run_id
                for message in event.messages:  # one line per node as it finishes
                    print(f"  [{event.node}] {message}")
            assert run_id is not None
            answer = agent.answer(run_id)  # the finished run, read back from its checkpoints
            confidence = f"{answer.confidence:.3f}" if answer.confidence is not None else "-"
            print(f"answer: {answer.text}  confidence: {confidence}  (right answer: {item.answer})")
            print(f"tokens: {answer.tokens.total}  probes: {answer.probes}  workflow: {answer.workflow}")


if __name__ == "__main__":
    main()
