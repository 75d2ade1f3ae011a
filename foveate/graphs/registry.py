"""Named node types and route conditions that workflow YAML files refer to.

A workflow file says ``uses: zoom`` or ``when: confident``; a :class:`Registry` maps those names
to Python code and to the pydantic models their ``params`` must satisfy, so that a file can be
checked completely before anything runs. There is deliberately no global registry here: the
built-in one is assembled elsewhere, and users extend a :meth:`Registry.copy` of it instead of
mutating shared state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict

from foveate.errors import GraphSpecError

AnyState = Any
"""The workflow's state (a ``TypedDict`` at run time). ``Any`` in these signatures because mypy does not
accept a function of a ``TypedDict`` where one of ``dict[str, Any]`` is expected."""

NodeFn = Callable[[AnyState], dict[str, Any]]
"""A LangGraph node: takes the state (``dict[str, Any]``), returns a partial update."""

ConditionFn = Callable[[AnyState], str]
"""A router: takes the state (``dict[str, Any]``), returns a route label."""

NodeFactory = Callable[[Any, Any], NodeFn]
"""``factory(params, services) -> NodeFn``: params is an instance of the node type's params model."""

ConditionImpl = Callable[[AnyState, Any], str]
"""``fn(state, params) -> label``: params is an instance of the condition's params model."""

_F = TypeVar("_F", bound=Callable[..., Any])


class NoParams(BaseModel):
    """The params model of a node type or condition that takes none: any key is an error."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class NodeType:
    """A registered node type: how to build a node from validated params and the services."""

    name: str
    params: type[BaseModel]
    factory: Callable[[BaseModel, Any], NodeFn]
    doc: str = ""


@dataclass
class ConditionType:
    """A registered condition: picks one of ``labels`` from the state and validated params."""

    name: str
    fn: Callable[[AnyState, BaseModel], str]
    params: type[BaseModel]
    labels: tuple[str, ...]
    doc: str = ""


class RegistryNames(NamedTuple):
    """The names a registry knows, sorted."""

    nodes: tuple[str, ...]
    conditions: tuple[str, ...]


def _doc(fn: Callable[..., Any]) -> str:
    return " ".join((fn.__doc__ or "").split())


class Registry:
    """Node types and conditions by name; register with the :meth:`node` and :meth:`condition` decorators."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeType] = {}
        self._conditions: dict[str, ConditionType] = {}

    def __repr__(self) -> str:
        names = self.names()
        return f"Registry(nodes={list(names.nodes)}, conditions={list(names.conditions)})"

    def node(self, name: str, params: type[BaseModel] | None = None) -> Callable[[_F], _F]:
        """Register ``factory(params, services) -> NodeFn`` as node type ``name``; returns it unchanged."""

        def register(factory: _F) -> _F:
            if name in self._nodes:
                raise GraphSpecError(f"node type {name!r} is already registered")
            self._nodes[name] = NodeType(name, params or NoParams, factory, _doc(factory))
            return factory

        return register

    def condition(
        self, name: str, labels: Sequence[str], params: type[BaseModel] | None = None
    ) -> Callable[[_F], _F]:
        """Register ``fn(state, params) -> label`` as condition ``name`` returning one of ``labels``."""
        labels = tuple(labels)
        if not labels or len(set(labels)) != len(labels) or not all(isinstance(x, str) for x in labels):
            raise GraphSpecError(f"condition {name!r} needs distinct string labels, got {list(labels)}")

        def register(fn: _F) -> _F:
            if name in self._conditions:
                raise GraphSpecError(f"condition {name!r} is already registered")
            self._conditions[name] = ConditionType(name, fn, params or NoParams, labels, _doc(fn))
            return fn

        return register

    def get_node(self, name: str) -> NodeType:
        """The node type ``name``; a :class:`GraphSpecError` listing the known ones if there is none."""
        try:
            return self._nodes[name]
        except KeyError:
            raise GraphSpecError(
                f"unknown node type {name!r}; known: {', '.join(self.names().nodes) or '(none)'}"
            ) from None

    def get_condition(self, name: str) -> ConditionType:
        """The condition ``name``; a :class:`GraphSpecError` listing the known ones if there is none."""
        try:
            return self._conditions[name]
        except KeyError:
            raise GraphSpecError(
                f"unknown condition {name!r}; known: {', '.join(self.names().conditions) or '(none)'}"
            ) from None

    def has_node(self, name: str) -> bool:
        return name in self._nodes

    def has_condition(self, name: str) -> bool:
        return name in self._conditions

    def names(self) -> RegistryNames:
        """Sorted names of the registered node types and conditions."""
        return RegistryNames(tuple(sorted(self._nodes)), tuple(sorted(self._conditions)))

    def copy(self) -> Registry:
        """An independent registry with the same entries, to extend without touching this one."""
        other = Registry()
        other._nodes.update(self._nodes)
        other._conditions.update(self._conditions)
        return other
