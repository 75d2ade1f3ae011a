"""Turn a validated :class:`~foveate.graphs.spec.WorkflowSpec` into a LangGraph ``StateGraph``.

The spec is validated again here (cheap, and a spec may have been built in code rather than
loaded), so a graph is only ever built from a workflow that can run to ``END``.

Step limit: ``spec.max_steps`` is LangGraph's ``recursion_limit`` (the number of super-steps; in
these one-way-on graphs, node executions). :func:`compile_workflow` bakes it into the compiled
graph's default config, and :func:`run_config` gives ``{"recursion_limit": spec.max_steps}`` for
a runner that passes its own config to ``invoke``/``stream``. Going over raises LangGraph's
``GraphRecursionError``.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from pydantic import BaseModel

from foveate.errors import GraphSpecError
from foveate.graphs.registry import ConditionFn, ConditionType, NodeFn, Registry
from foveate.graphs.spec import END_NAME, WorkflowSpec, validate_workflow


def run_config(spec: WorkflowSpec, **extra: Any) -> RunnableConfig:
    """A LangGraph run config carrying the workflow's step limit, plus ``extra`` (e.g. ``configurable``)."""
    return RunnableConfig(recursion_limit=spec.max_steps, **extra)  # type: ignore[typeddict-item]


def build_graph(spec: WorkflowSpec, registry: Registry, services: Any, state_schema: type) -> StateGraph:
    """An uncompiled ``StateGraph``: one node per spec node, built by its factory from validated params."""
    validate_workflow(spec, registry)
    graph: StateGraph[Any] = StateGraph(state_schema)
    keys = _state_keys(state_schema)
    for node_id, node in spec.nodes.items():
        node_type = registry.get_node(node.uses)
        params = node_type.params.model_validate(node.params)
        fn = node_type.factory(params, services)
        graph.add_node(node_id, _checked(fn, node_id, node.uses, keys) if keys else fn)  # type: ignore[call-overload]
    graph.add_edge(START, spec.start)
    for edge in spec.edges:
        if edge.target is not None:
            graph.add_edge(edge.source, _target(edge.target))
            continue
        assert edge.when is not None  # validate_workflow guarantees `to` or `when`+`routes`
        condition = registry.get_condition(edge.when)
        router = _router(condition, condition.params.model_validate(edge.params), edge.source)
        path_map = {label: _target(target) for label, target in edge.routes.items()}
        graph.add_conditional_edges(edge.source, router, path_map)  # type: ignore[arg-type]
    return graph


def _state_keys(state_schema: type) -> frozenset[str]:
    """The keys a node may set (a TypedDict's or pydantic model's fields); empty when unknown."""
    fields = getattr(state_schema, "model_fields", None)
    if isinstance(fields, dict):
        return frozenset(fields)
    try:
        return frozenset(typing.get_type_hints(state_schema))
    except (NameError, TypeError):
        return frozenset()


def _checked(fn: NodeFn, node_id: str, uses: str, keys: frozenset[str]) -> NodeFn:
    """``fn``, refusing an update with keys the state does not have: LangGraph would drop them silently
    and the node's work would vanish from the state and the checkpoints."""

    def node(state: Any) -> Any:
        update = fn(state)
        if isinstance(update, dict) and not keys.issuperset(update):
            unknown = sorted(set(update) - keys)
            raise GraphSpecError(
                f"node {node_id!r} ({uses}) returned {', '.join(map(repr, unknown))}, which the workflow "
                f"state does not have; its keys: {', '.join(sorted(keys))}"
            )
        return update

    node.__name__ = getattr(fn, "__name__", node_id)
    node.__doc__ = fn.__doc__
    return node


def compile_workflow(
    spec: WorkflowSpec,
    registry: Registry,
    services: Any,
    state_schema: type,
    *,
    checkpointer: Any = None,
    interrupt_before: Sequence[str] | None = None,
) -> CompiledStateGraph:
    """Build and compile; the result's default config has ``recursion_limit=spec.max_steps``."""
    if interrupt_before is not None:
        unknown = [n for n in interrupt_before if n != "*" and n not in spec.nodes]
        if unknown:
            raise GraphSpecError(
                f"interrupt_before names unknown node(s) {', '.join(unknown)}; nodes: {', '.join(spec.nodes)}"
            )
    compiled = build_graph(spec, registry, services, state_schema).compile(
        checkpointer=checkpointer,
        interrupt_before=list(interrupt_before) if interrupt_before is not None else None,
        name=spec.name,
    )
    return compiled.with_config(run_config(spec))


def _target(name: str) -> str:
    return END if name == END_NAME else name


def _router(condition: ConditionType, params: BaseModel, source: str) -> ConditionFn:
    """A LangGraph path function: the condition with its params; a label outside its labels is a bug."""

    def route(state: dict[str, Any]) -> str:
        label = condition.fn(state, params)
        if label not in condition.labels:
            raise GraphSpecError(
                f"condition {condition.name!r} (from node {source!r}) returned {label!r}, "
                f"not one of its labels: {', '.join(condition.labels)}"
            )
        return label

    route.__name__ = f"{condition.name}_from_{source}"
    return route
