"""Reading a workflow's YAML safely: the file (size, kind), the loader (YAML 1.2 booleans), and the size the
document stands for once its aliases are expanded, counted without expanding them."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from foveate.errors import GraphSpecError

__all__ = ["MAX_EXPANDED_NODES", "MAX_WORKFLOW_BYTES", "WorkflowLoader", "expanded_size", "read_source"]

MAX_WORKFLOW_BYTES = 4_000_000
"""The largest workflow file read (a 10,000-node workflow is well under 1 MB)."""
MAX_EXPANDED_NODES = 1_000_000
"""The most YAML values a workflow may expand to, aliases included."""


class WorkflowLoader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so route labels ``yes``/``no``/``on``/``off``
    stay strings instead of silently becoming ``True``/``False`` (YAML 1.1's rule)."""


WorkflowLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
WorkflowLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_source(source: str | Path) -> tuple[str, str]:
    """The workflow's name for errors and its text: from a file (refusing a huge or special one), or the
    YAML text itself."""
    if isinstance(source, str):
        one_line = "\n" not in source and "\r" not in source
        if not (one_line and (source.endswith((".yaml", ".yml")) or Path(source).is_file())):
            if len(source) > MAX_WORKFLOW_BYTES:
                raise GraphSpecError(f"<string>: {len(source):,} characters is not a workflow")
            return "<string>", source
        source = Path(source)
    if source.exists() and not source.is_file():  # a FIFO or a device would block or never end
        raise GraphSpecError(f"{source}: not a regular file")
    try:
        size = source.stat().st_size
        if size > MAX_WORKFLOW_BYTES:
            raise GraphSpecError(
                f"{source}: {size:,} bytes is not a workflow (at most {MAX_WORKFLOW_BYTES:,} bytes are read)"
            )
        return str(source), source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise GraphSpecError(f"{source}: cannot read workflow: {reason}") from None


def expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many values ``node`` stands for once every alias is expanded, counted without expanding: an
    alias is the same node object as its anchor, so each distinct node is counted once and reused."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a node reached again while counting itself (a recursive alias) adds no more
    total = 1
    if isinstance(node, yaml.MappingNode):
        total += sum(expanded_size(k, memo) + expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        total += sum(expanded_size(item, memo) for item in node.value)
    memo[key] = min(total, MAX_EXPANDED_NODES + 1)
    return memo[key]
