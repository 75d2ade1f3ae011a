"""Workflows: LangGraph graphs of nodes around the VLM, defined in YAML or Python.

The engine (``spec``: the YAML format and its validation, ``registry``: node types and conditions by
name, ``compiler``: spec to LangGraph, ``workflow``: run, stream, resume, batch, ``state``: the checkpointed
state and a run's input and output, ``services``: what nodes run against) knows no node; the built-in nodes
(``nodes``, one module each) register on a registry like yours do::

    registry = builtin_registry().copy()

    @registry.node("my_node", MyParams)
    def my_node(params: MyParams, services: Services) -> NodeFn:
        def node(state: QAState) -> dict[str, Any]:
            ledger = question_ledger(state)  # what is left of the question's budget
            ...
        return node
"""

from foveate.graphs.nodes import NodeParams, builtin_registry, question_ledger
from foveate.graphs.registry import NodeFn, Registry
from foveate.graphs.services import Services
from foveate.graphs.spec import WorkflowSpec, load_workflow
from foveate.graphs.state import QAState, RunInput, RunOutput
from foveate.graphs.workflow import BUILTIN_WORKFLOWS, NodeEvent, SearchProgress, Workflow, open_checkpointer

__all__ = [
    "BUILTIN_WORKFLOWS",
    "NodeEvent",
    "NodeFn",
    "NodeParams",
    "QAState",
    "Registry",
    "RunInput",
    "RunOutput",
    "SearchProgress",
    "Services",
    "Workflow",
    "WorkflowSpec",
    "builtin_registry",
    "load_workflow",
    "open_checkpointer",
    "question_ledger",
]
