"""Workflow definitions in YAML: the models, loading with line numbers, and full validation.

A workflow names its nodes (each ``uses`` a registered node type with ``params``), the node to
``start`` at, and edges: either ``{from: a, to: b}`` or ``{from: a, when: CONDITION, routes:
{LABEL: b, ...}}``; ``END`` is the target that finishes. Everything that can be checked without
running is checked here, up front, and every error starts with ``FILE:LINE:`` of the YAML that
is wrong, because a workflow that fails halfway through a run wastes model calls and time.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from foveate.errors import GraphSpecError
from foveate.graphs.registry import Registry
from foveate.graphs.yaml_source import MAX_EXPANDED_NODES, WorkflowLoader, expanded_size, read_source

END_NAME = "END"
START_NAME = "START"
_NODE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

PathKey = tuple[str | int, ...]


class NodeSpec(BaseModel):
    """One node: the registered node type it ``uses`` and that type's ``params``."""

    model_config = ConfigDict(extra="forbid")

    uses: str
    params: dict[str, Any] = Field(default_factory=dict)


class EdgeSpec(BaseModel):
    """``from`` a node either ``to`` one target, or ``when`` a condition with ``routes`` per label."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str = Field(alias="from")
    target: str | None = Field(default=None, alias="to")
    when: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    routes: dict[str, str] = Field(default_factory=dict)

    @property
    def conditional(self) -> bool:
        return self.when is not None

    def targets(self) -> list[str]:
        """Every node name (or ``END``) this edge can lead to."""
        return [self.target] if self.target is not None else list(self.routes.values())


class WorkflowSpec(BaseModel):
    """A whole workflow. ``max_steps`` bounds node executions per run (LangGraph's recursion limit)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    start: str
    nodes: dict[str, NodeSpec]
    edges: list[EdgeSpec]
    max_steps: int = Field(default=50, ge=1)


@dataclass
class SourceMap:
    """Where each part of a workflow came from: ``("nodes", "zoomer", "params", "depth") -> line``.

    A mapping entry maps to the line of its key, a list item to the line where it starts. Paths
    that are not in the file (a missing key) fall back to their nearest present parent.
    """

    filename: str = "<spec>"
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line(self, path: Sequence[str | int]) -> int | None:
        key = tuple(path)
        while True:
            if key in self.lines:
                return self.lines[key]
            if not key:
                return None
            key = key[:-1]

    def where(self, path: Sequence[str | int]) -> str:
        """``FILE:LINE`` (or just ``FILE`` if no line is known) for an error message."""
        line = self.line(path)
        return self.filename if line is None else f"{self.filename}:{line}"

    def error(self, path: Sequence[str | int], message: str) -> GraphSpecError:
        return GraphSpecError(f"{self.where(path)}: {message}")


# ---------------------------------------------------------------- loading


def load_workflow(source: str | Path, registry: Registry | None) -> tuple[WorkflowSpec, SourceMap]:
    """Read, parse and fully validate a workflow; raise :class:`GraphSpecError` at the first problem.

    ``source`` is a :class:`~pathlib.Path`, or a ``str`` that is a path when it is one line
    ending in ``.yaml``/``.yml`` or naming an existing file, and YAML text otherwise. With
    ``registry=None`` only the structure is checked (node types, conditions and params are not).
    """
    filename, text = read_source(source)
    data, source_map = _parse(text, filename)
    if not isinstance(data, dict):
        raise source_map.error(
            (), f"expected a mapping with keys name, start, nodes, edges at the top level, got {_kind(data)}"
        )
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, WorkflowSpec, (), source_map, "") from None
    validate_workflow(spec, registry, source_map)
    return spec, source_map


def _parse(text: str, filename: str) -> tuple[Any, SourceMap]:
    source_map = SourceMap(filename)
    loader = WorkflowLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            source_map.lines[()] = 1
            return None, source_map
        size = expanded_size(root, {})
        if size > MAX_EXPANDED_NODES:
            # aliases of aliases: 490 bytes of YAML expanded to 22 GB before this check (a "billion laughs")
            raise GraphSpecError(
                f"{filename}: its YAML aliases expand to more than {MAX_EXPANDED_NODES:,} values; a workflow "
                "needs far fewer"
            )
        _record(root, (), source_map)
        return loader.construct_document(root), source_map
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        what = "; ".join(x for x in (exc.context, exc.problem) if x)
        raise GraphSpecError(f"{filename}{line}: invalid YAML: {what}") from None
    except yaml.YAMLError as exc:
        raise GraphSpecError(f"{filename}: invalid YAML: {exc}") from None
    except RecursionError:  # PyYAML composes and walks nodes recursively: 100,000 "[" exhausted the stack
        raise GraphSpecError(f"{filename}: its YAML nests too deeply for a workflow") from None
    finally:
        loader.dispose()


def _record(node: yaml.Node, path: PathKey, source_map: SourceMap) -> None:
    """Fill ``source_map`` with the line of every key and list item; reject duplicate keys."""
    if path not in source_map.lines:
        source_map.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            if key == "<<" and key_node.tag == "tag:yaml.org,2002:merge":
                continue  # merge keys: the merged entries keep the lines of the anchor they come from
            if key in seen:
                dotted = _dotted(path) or "the top level"
                raise GraphSpecError(
                    f"{source_map.filename}:{key_node.start_mark.line + 1}: "
                    f"duplicate key {key!r} in {dotted}; each key may appear once"
                )
            seen.add(key)
            source_map.lines[(*path, key)] = key_node.start_mark.line + 1
            _record(value_node, (*path, key), source_map)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record(item, (*path, index), source_map)


def _kind(value: Any) -> str:
    if value is None:
        return "an empty document"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} value"


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ----------------------------------------------------- pydantic errors -> lines


def _from_validation(
    exc: ValidationError, model: type[BaseModel], prefix: PathKey, source_map: SourceMap, what: str
) -> GraphSpecError:
    """The first error of ``exc`` (by line) as a ``FILE:LINE: ...`` message; ``what`` names the owner."""
    errors = sorted(
        exc.errors(include_url=False),
        key=lambda e: source_map.line((*prefix, *e["loc"])) or 0,
    )
    first = errors[0]
    loc: PathKey = tuple(first["loc"])
    path = (*prefix, *loc)
    name = _dotted(loc)
    if first["type"] == "extra_forbidden":
        known = _fields_at(model, loc[:-1])
        hint = f"; expected one of: {', '.join(known)}" if known else ""
        message = f"unknown key {loc[-1]!r}{hint}"
    elif first["type"] == "missing":
        owner = _dotted((*prefix, *loc[:-1])) or "the top level"
        message = f"missing required key {loc[-1]!r} in {owner}"
    else:
        message = f"{name}: {first['msg']}" if name else first["msg"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return source_map.error(path, f"{what}{message}{more}")


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The keys (aliases) the model nested at ``loc`` accepts, or ``[]`` if it is not a model."""
    annotation: Any = model
    parts = list(loc)
    while parts:
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = next((f for n, f in annotation.model_fields.items() if (f.alias or n) == parts[0]), None)
            if info is None:
                return []
            annotation = info.annotation
            parts.pop(0)
            continue
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin in (list, tuple, Sequence, dict, Mapping) and args:
            annotation = args[-1]
            parts.pop(0)
        elif origin in (Union, types.UnionType) and len(args) == 1:
            annotation = args[0]
        else:
            return []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [f.alias or n for n, f in annotation.model_fields.items()]
    return []


# ---------------------------------------------------------------- validation


def validate_workflow(
    spec: WorkflowSpec, registry: Registry | None, source_map: SourceMap | None = None
) -> None:
    """Check everything that can be checked before a run; raise :class:`GraphSpecError` if anything is off.

    Node ids, node types and their params, conditions, their params and route labels, edge
    targets, the start node, one way on from every node, every node reachable from ``start``,
    and ``END`` reachable from every node (no loop without an exit). ``registry=None`` skips the
    checks that need one (node types, conditions, params, labels).
    """
    sm = source_map or SourceMap()
    names = list(spec.nodes)
    targets_ok = {*names, END_NAME}

    def listing(extra: Sequence[str] = ()) -> str:
        return ", ".join([*names, *extra]) or "(none)"

    where: PathKey
    for node_id, node in spec.nodes.items():
        where = ("nodes", node_id)
        if node_id in (END_NAME, START_NAME) or not _NODE_ID.match(node_id):
            raise sm.error(
                where,
                f"bad node id {node_id!r}: use letters, digits and '_' (not starting with a digit), "
                f"and not START or END",
            )
        if registry is None:
            continue
        if not registry.has_node(node.uses):
            known = ", ".join(registry.names().nodes) or "(none)"
            raise sm.error(
                (*where, "uses"), f"node {node_id!r} uses unknown node type {node.uses!r}; known: {known}"
            )
        node_type = registry.get_node(node.uses)
        try:
            node_type.params.model_validate(node.params)
        except ValidationError as exc:
            raise _from_validation(
                exc, node_type.params, (*where, "params"), sm, f"node {node_id!r} ({node.uses}) params: "
            ) from None

    outgoing: dict[str, int] = {}
    for index, edge in enumerate(spec.edges):
        where = ("edges", index)
        if edge.source not in spec.nodes:
            raise sm.error((*where, "from"), f"edge from unknown node {edge.source!r}; nodes: {listing()}")
        if edge.source in outgoing:
            first = outgoing[edge.source]
            raise sm.error(
                (*where, "from"),
                f"node {edge.source!r} already has an outgoing edge (edges[{first}], "
                f"{sm.where(('edges', first))}); two ways on are ambiguous: give one edge, "
                f"conditional if the way on depends on the state",
            )
        outgoing[edge.source] = index
        if edge.target is not None and (edge.when is not None or edge.routes or edge.params):
            extra = "when" if edge.when is not None else ("routes" if edge.routes else "params")
            raise sm.error(
                (*where, extra),
                f"edge from {edge.source!r} has `to` and `{extra}`; give either `to: NODE`, "
                f"or `when: CONDITION` with `routes: {{LABEL: NODE}}`",
            )
        if edge.target is not None:
            if edge.target not in targets_ok:
                raise sm.error(
                    (*where, "to"),
                    f"edge from {edge.source!r} goes to unknown node {edge.target!r}; "
                    f"expected one of: {listing([END_NAME])}",
                )
            continue
        if edge.when is None:
            extra = "routes" if edge.routes else ("params" if edge.params else "from")
            raise sm.error(
                (*where, extra),
                f"edge from {edge.source!r} has neither `to` nor `when`; give `to: NODE`, "
                f"or `when: CONDITION` with `routes: {{LABEL: NODE}}`",
            )
        _check_routes(spec, registry, sm, index, edge, targets_ok, listing([END_NAME]))

    if spec.start not in spec.nodes:
        raise sm.error(("start",), f"start {spec.start!r} is not a node; nodes: {listing()}")

    # each node's targets, built in one pass over the edges (scanning every edge for every node was
    # quadratic: a 10,000-node workflow took 15 to 25 s to validate, 2 to 4 s since)
    targets: dict[str, list[str]] = {n: [] for n in names}
    for edge in spec.edges:
        targets.setdefault(edge.source, []).extend(edge.targets())
    successors = {n: [t for t in targets[n] if t != END_NAME] for n in names}
    reachable = _closure([spec.start], successors)
    for node_id in names:
        if node_id not in reachable:
            raise sm.error(
                ("nodes", node_id), f"node {node_id!r} cannot be reached from start {spec.start!r}"
            )
    for node_id in names:
        if node_id not in outgoing:
            raise sm.error(
                ("nodes", node_id),
                f"node {node_id!r} has no outgoing edge; add one, e.g. `- {{from: {node_id}, to: END}}`",
            )

    predecessors: dict[str, list[str]] = {n: [] for n in [*names, END_NAME]}
    for node_id in names:
        for target in targets[node_id]:
            predecessors[target].append(node_id)
    can_finish = _closure([END_NAME], predecessors)
    stuck = [n for n in names if n not in can_finish]
    if stuck:
        raise sm.error(
            ("nodes", stuck[0]),
            f"nodes {', '.join(stuck)} loop with no way to END; give one of them a route to END",
        )


def _check_routes(
    spec: WorkflowSpec,
    registry: Registry | None,
    sm: SourceMap,
    index: int,
    edge: EdgeSpec,
    targets_ok: set[str],
    target_list: str,
) -> None:
    where: PathKey = ("edges", index)
    assert edge.when is not None
    labels: tuple[str, ...] | None = None
    if registry is not None:
        if not registry.has_condition(edge.when):
            known = ", ".join(registry.names().conditions) or "(none)"
            raise sm.error(
                (*where, "when"),
                f"edge from {edge.source!r} uses unknown condition {edge.when!r}; known: {known}",
            )
        condition = registry.get_condition(edge.when)
        labels = condition.labels
        try:
            condition.params.model_validate(edge.params)
        except ValidationError as exc:
            raise _from_validation(
                exc, condition.params, (*where, "params"), sm, f"condition {edge.when!r} params: "
            ) from None
    if not edge.routes:
        wanted = f" for labels {', '.join(labels)}" if labels else ""
        raise sm.error(
            (*where, "when"), f"edge from {edge.source!r} has `when` but no `routes: {{LABEL: NODE}}`{wanted}"
        )
    for label, target in edge.routes.items():
        if labels is not None and label not in labels:
            raise sm.error(
                (*where, "routes", label),
                f"condition {edge.when!r} never returns label {label!r}; its labels are: {', '.join(labels)}",
            )
        if target not in targets_ok:
            raise sm.error(
                (*where, "routes", label),
                f"route {label!r} from {edge.source!r} goes to unknown node {target!r}; "
                f"expected one of: {target_list}",
            )
    missing = [label for label in labels or () if label not in edge.routes]
    if missing:
        raise sm.error(
            (*where, "routes"),
            f"routes of condition {edge.when!r} from {edge.source!r} miss label(s) {', '.join(missing)}; "
            f"every label needs a target",
        )


def _closure(seeds: Sequence[str], graph: Mapping[str, Sequence[str]]) -> set[str]:
    seen = set(seeds)
    todo = list(seeds)
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen
