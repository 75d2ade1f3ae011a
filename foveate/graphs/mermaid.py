"""Draw a workflow as a Mermaid ``flowchart TD`` straight from the spec (no LangGraph, no registry).

Drawn from the spec rather than the compiled graph so that it works on a file whose node types
are not installed, and shows the YAML's own names: node boxes read ``id<br/>uses``, conditional
edges ``when: label``. Node ids are prefixed (``n_``) in the Mermaid source because words such as
``end`` are Mermaid keywords and would break the chart.
"""

from __future__ import annotations

from foveate.graphs.spec import END_NAME, WorkflowSpec

_START_ID = "__start__"
_END_ID = "__end__"


def _id(name: str) -> str:
    return _END_ID if name == END_NAME else f"n_{name}"


def _text(value: str) -> str:
    """Mermaid label text: quotes and angle brackets as entities, so a name cannot break the syntax."""
    return value.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def to_mermaid(spec: WorkflowSpec) -> str:
    """Mermaid source for ``spec``: START and END, every node, every plain and conditional edge."""
    lines = ["flowchart TD", f"    {_START_ID}([START])"]
    for node_id, node in spec.nodes.items():
        lines.append(f'    {_id(node_id)}["{_text(node_id)}<br/>{_text(node.uses)}"]')
    lines.append(f"    {_END_ID}([END])")
    lines.append(f"    {_START_ID} --> {_id(spec.start)}")
    for edge in spec.edges:
        if edge.target is not None:
            lines.append(f"    {_id(edge.source)} --> {_id(edge.target)}")
            continue
        for label, target in edge.routes.items():
            lines.append(f'    {_id(edge.source)} -->|"{_text(f"{edge.when}: {label}")}"| {_id(target)}')
    return "\n".join(lines) + "\n"
