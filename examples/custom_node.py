"""Add your own node type and route condition, use them in a workflow YAML, run it end to end.

    .venv/bin/python examples/custom_node.py

Two node types and one condition are registered on a copy of the built-in registry:

- ``size_note``: writes a perception note about the image's size (no model call);
- ``double_check``: scores the options again on the whole image and averages that with the answer
  from the zoomed crop, so that a crop that misled the model is caught before the conformal gate;
- ``image_is``: routes ``large`` images to the zoom search and ``small`` ones straight to reasoning.

A node type is ``factory(params, services) -> fn(state) -> update``: the factory runs once when the
workflow is compiled, with its params validated by the pydantic model given at registration; the
function reads the run's state (``foveate.graphs.state.QAState``) and returns only the keys it sets.
Runs offline on the embedded tiny VLM.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from foveate.errors import GraphSpecError
from foveate.graphs import (
    QAState,
    RunInput,
    Services,
    Workflow,
    builtin_registry,
    load_workflow,
    question_ledger,
)
from foveate.graphs.mermaid import to_mermaid
from foveate.synthetic import generate_scene
from foveate.vlm import VLMRequest, load_vlm

# A copy: extending it does not change the built-in registry other code uses.
registry = builtin_registry().copy()


class SizeParams(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt param is a FILE:LINE error, not ignored
    large_side: int = Field(default=1024, ge=1)


@registry.node("size_note", SizeParams)
def size_note(params: SizeParams, services: Services) -> Any:
    """Note the image's size: what the model sees of it depends on it."""

    def node(state: QAState) -> dict[str, Any]:
        width, height = services.image(state).size  # decoded once per run, cached by the services
        kind = "large" if max(width, height) >= params.large_side else "small"
        note = f"the image is {width}x{height} px ({kind})"
        # `perception` and `messages` are lists that add up across nodes (LangGraph reducers).
        return {"perception": [note], "messages": [{"node": "size_note", "text": note}]}

    return node


class DoubleCheckParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight: float = Field(default=0.5, ge=0.0, le=1.0)  # the whole image's share of the final scores


@registry.node("double_check", DoubleCheckParams)
def double_check(params: DoubleCheckParams, services: Services) -> Any:
    """Score the options on the whole image too and blend that with the crop's scores."""

    def node(state: QAState) -> dict[str, Any]:
        options, scores = state.get("options") or [], state.get("option_scores") or []
        if not options or len(scores) != len(options):
            return {"messages": [{"node": "double_check", "text": "nothing to check (free-text answer)"}]}
        ledger = question_ledger(state)  # what is left of the question's token budget
        request = VLMRequest.from_prompt(state["question"], images=[services.image(state)])
        whole = services.vlm.score(request, options, ledger).probabilities
        blended = [(1 - params.weight) * c + params.weight * w for c, w in zip(scores, whole, strict=True)]
        answer = options[blended.index(max(blended))]
        agrees = options[whole.index(max(whole))] == state.get("answer")
        text = (
            f"whole image {'agrees' if agrees else 'disagrees'} "
            f"(its pick: {options[whole.index(max(whole))]!r}); blended answer {answer!r} "
            f"(p = {max(blended):.2f})"
        )
        return {
            "answer": answer,
            "option_scores": blended,
            "spent": ledger.spent.model_dump(),  # summed into the run's token total by a reducer
            "messages": [{"node": "double_check", "text": text}],
        }

    return node


class SizeCondition(BaseModel):
    model_config = ConfigDict(extra="forbid")
    large_side: int = Field(default=1024, ge=1)


@registry.condition("image_is", ["large", "small"], SizeCondition)
def image_is(state: dict[str, Any], params: SizeCondition) -> str:
    """``large`` when the image's longer side reaches ``large_side``, else ``small``."""
    from PIL import Image

    with Image.open(state["image_path"]) as image:  # reads the header only
        return "large" if max(image.size) >= params.large_side else "small"


WORKFLOW = """\
name: checked_zoom
description: Note the size, zoom only into large images, answer, double-check on the whole image, gate.
start: size
nodes:
  size:
    uses: size_note
    params: {large_side: 1024}
  zoom:
    uses: zoom
    params: {strategy: fast, max_probes: 12}
  reason:
    uses: reason
  check:
    uses: double_check
    params: {weight: 0.3}
  abstain:
    uses: abstain
edges:
  - from: size
    when: image_is
    params: {large_side: 1024}
    routes: {large: zoom, small: reason}
  - {from: zoom, to: reason}
  - {from: reason, to: check}
  - {from: check, to: abstain}
  - {from: abstain, to: END}
"""


def main() -> None:
    # The built-in registry does not know the new node types: the file is rejected, with the line.
    try:
        load_workflow(WORKFLOW, builtin_registry())
    except GraphSpecError as exc:
        print(f"with the built-in registry: {exc}")

    spec, _ = load_workflow(WORKFLOW, registry)  # YAML text or a path; validated against `registry`
    print(f"registered: nodes {list(registry.names().nodes)}, conditions {list(registry.names().conditions)}")
    print(to_mermaid(spec))

    services = Services(vlm=load_vlm())  # the embedded tiny VLM
    flow = Workflow(spec, services, registry=registry)  # in-memory checkpoints
    for size_range in ((1536, 2048), (512, 640)):  # one large scene (zoomed), one small (not)
        image, item = generate_scene(seed=7, index=0, size_range=size_range)
        out = flow.run(RunInput(question=item.question, image=image, options=item.options))
        print(f"\nQ: {item.question} {item.options}  (right answer: {item.answer})")
        for message in out.messages:
            print(f"  [{message['node']}] {message['text']}")
        print(f"answer: {out.answer}  tokens: {out.usage.total}  status: {out.status}")


if __name__ == "__main__":
    main()
