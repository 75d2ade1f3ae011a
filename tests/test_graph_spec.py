"""Workflow YAML: loading with line numbers, every validation error, compiling and running with
LangGraph, Mermaid output, and ``foveate graph show``; on a private registry of toy nodes."""

from __future__ import annotations

import sys
import textwrap
import types
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.errors import GraphRecursionError
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from foveate.cli.main import app
from foveate.errors import FoveateError, GraphSpecError
from foveate.graphs.compiler import build_graph, compile_workflow, run_config
from foveate.graphs.mermaid import to_mermaid
from foveate.graphs.registry import Registry
from foveate.graphs.spec import SourceMap, WorkflowSpec, load_workflow, validate_workflow


class State(TypedDict):
    x: int


class AddParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int


class BigParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: int = 10


def toy_registry() -> Registry:
    registry = Registry()

    @registry.node("add", params=AddParams)
    def add(params: AddParams, services: Any) -> Any:
        """Add ``amount`` to x; log the call in the services."""

        def run(state: dict[str, Any]) -> dict[str, Any]:
            services["calls"].append(params.amount)
            return {"x": state["x"] + params.amount}

        return run

    @registry.node("noop")
    def noop(params: BaseModel, services: Any) -> Any:
        return lambda state: {}

    @registry.condition("big", labels=["yes", "no"], params=BigParams)
    def big(state: dict[str, Any], params: BigParams) -> str:
        return "yes" if state["x"] >= params.threshold else "no"

    return registry


LOOP = """\
name: loop
description: add 3 until x >= 10, then add 100
start: bump
nodes:
  bump:
    uses: add
    params: {amount: 3}
  finish:
    uses: add
    params:
      amount: 100
edges:
  - from: bump
    when: big
    params: {threshold: 10}
    routes:
      yes: finish
      no: bump
  - {from: finish, to: END}
"""


def test_loop_compiles_and_runs_to_end() -> None:
    registry = toy_registry()
    spec, source_map = load_workflow(LOOP, registry)
    assert source_map.filename == "<string>"
    assert source_map.line(("nodes", "finish", "params", "amount")) == 11
    assert spec.edges[0].routes == {"yes": "finish", "no": "bump"}  # YAML 1.1's yes/no stay labels
    services: dict[str, list[int]] = {"calls": []}
    graph = compile_workflow(spec, registry, services, State)
    assert graph.invoke({"x": 0}) == {"x": 112}
    assert services["calls"] == [3, 3, 3, 3, 100]
    assert graph.invoke({"x": 20}, run_config(spec)) == {"x": 123}


def test_build_graph_is_uncompiled_and_runs_with_a_checkpointer() -> None:
    registry = toy_registry()
    spec, _ = load_workflow(LOOP, registry)
    graph = build_graph(spec, registry, {"calls": []}, State)
    assert set(graph.nodes) == {"bump", "finish"}
    compiled = compile_workflow(
        spec, registry, {"calls": []}, State, checkpointer=InMemorySaver(), interrupt_before=["finish"]
    )
    config: RunnableConfig = {"configurable": {"thread_id": "t1"}}
    assert compiled.invoke({"x": 5}, config) == {"x": 11}  # stopped before finish
    assert compiled.invoke(None, config) == {"x": 111}
    with pytest.raises(GraphSpecError, match="unknown node"):
        compile_workflow(spec, registry, {"calls": []}, State, interrupt_before=["nope"])


def test_max_steps_is_the_recursion_limit() -> None:
    registry = toy_registry()
    spec, _ = load_workflow(LOOP.replace("name: loop", "name: loop\nmax_steps: 3"), registry)
    assert spec.max_steps == 3 and run_config(spec) == {"recursion_limit": 3}
    graph = compile_workflow(spec, registry, {"calls": []}, State)
    with pytest.raises(GraphRecursionError):
        graph.invoke({"x": 0})
    assert graph.invoke({"x": 0}, {"recursion_limit": 50}) == {"x": 112}


def test_condition_returning_an_undeclared_label_fails_the_run() -> None:
    registry = toy_registry()

    @registry.condition("liar", labels=["yes"])
    def liar(state: dict[str, Any], params: BaseModel) -> str:
        return "maybe"

    text = LOOP.replace("when: big", "when: liar").replace("    params: {threshold: 10}\n", "")
    text = text.replace("      no: bump\n", "")
    spec, _ = load_workflow(text, registry)
    with pytest.raises(GraphSpecError, match="returned 'maybe'"):
        compile_workflow(spec, registry, {"calls": []}, State).invoke({"x": 0})


def test_load_from_path_names_the_file(tmp_path: Path) -> None:
    registry = toy_registry()
    path = tmp_path / "flow.yaml"
    path.write_text(LOOP.replace("uses: add\n    params: {amount: 3}", "uses: add2\n    params: {amount: 3}"))
    for source in (path, str(path)):
        with pytest.raises(GraphSpecError) as info:
            load_workflow(source, registry)
        assert str(info.value).startswith(
            f"{path}:6: node 'bump' uses unknown node type 'add2'; known: add, noop"
        )
    with pytest.raises(GraphSpecError, match="cannot read"):
        load_workflow(tmp_path / "missing.yaml", registry)


# Each bad workflow marks the line the error must name with `# <-`.
BAD: dict[str, tuple[str, str]] = {
    "yaml syntax": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}
        edges: []  # <-
        """,
        "invalid YAML",
    ),
    "top level not a mapping": ("- a  # <-\n- b\n", "expected a mapping"),
    "empty document": ("# <-\n", "an empty document"),
    "unknown top-level key": (
        """\
        name: x
        strat: a  # <-
        start: a
        nodes: {a: {uses: noop}}
        edges: [{from: a, to: END}]
        """,
        "unknown key 'strat'; expected one of: name, description, start, nodes, edges, max_steps",
    ),
    "missing key": (
        """\
        name: x
        start: a
        nodes:
          a:  # <-
            params: {}
        edges: [{from: a, to: END}]
        """,
        "missing required key 'uses' in nodes.a",
    ),
    "unknown edge key": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - from: a
            too: END  # <-
        """,
        "unknown key 'too'; expected one of: from, to, when, params, routes",
    ),
    "duplicate key": (
        """\
        name: x
        start: a
        nodes:
          a: {uses: noop}
          a: {uses: noop}  # <-
        edges: [{from: a, to: END}]
        """,
        "duplicate key 'a' in nodes",
    ),
    "max_steps not an int": (
        """\
        name: x
        start: a
        max_steps: many  # <-
        nodes: {a: {uses: noop}}
        edges: [{from: a, to: END}]
        """,
        "max_steps: Input should be a valid integer",
    ),
    "bad node id": (
        """\
        name: x
        start: END
        nodes:
          END: {uses: noop}  # <-
        edges: [{from: END, to: END}]
        """,
        "bad node id 'END'",
    ),
    "unknown node type": (
        """\
        name: x
        start: a
        nodes:
          a:
            uses: zoom2  # <-
        edges: [{from: a, to: END}]
        """,
        "node 'a' uses unknown node type 'zoom2'; known: add, noop",
    ),
    "param of the wrong type": (
        """\
        name: x
        start: a
        nodes:
          a:
            uses: add
            params:
              amount: lots  # <-
        edges: [{from: a, to: END}]
        """,
        "node 'a' (add) params: amount: Input should be a valid integer",
    ),
    "unknown param": (
        """\
        name: x
        start: a
        nodes:
          a:
            uses: add
            params:
              amount: 1
              amuont: 2  # <-
        edges: [{from: a, to: END}]
        """,
        "unknown key 'amuont'; expected one of: amount",
    ),
    "missing param": (
        """\
        name: x
        start: a
        nodes:
          a:
            uses: add
            params: {}  # <-
        edges: [{from: a, to: END}]
        """,
        "missing required key 'amount' in nodes.a.params",
    ),
    "param for a node type that takes none": (
        """\
        name: x
        start: a
        nodes:
          a:
            uses: noop
            params: {depth: 2}  # <-
        edges: [{from: a, to: END}]
        """,
        "unknown key 'depth'",
    ),
    "edge from unknown node": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - {from: a, to: END}
          - from: b  # <-
            to: a
        """,
        "edge from unknown node 'b'; nodes: a",
    ),
    "edge to unknown node": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - from: a
            to: b  # <-
        """,
        "edge from 'a' goes to unknown node 'b'; expected one of: a, END",
    ),
    "unknown condition": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - from: a
            when: huge  # <-
            routes: {yes: END, no: a}
        """,
        "unknown condition 'huge'; known: big",
    ),
    "condition param of the wrong type": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - from: a
            when: big
            params:
              threshold: [1]  # <-
            routes: {yes: END, no: a}
        """,
        "condition 'big' params: threshold: Input should be a valid integer",
    ),
    "route label the condition cannot return": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - from: a
            when: big
            routes:
              yes: END
              no: a
              maybe: a  # <-
        """,
        "condition 'big' never returns label 'maybe'; its labels are: yes, no",
    ),
    "label missing from routes": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - from: a
            when: big
            routes:  # <-
              yes: END
        """,
        "miss label(s) no",
    ),
    "route to unknown node": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - from: a
            when: big
            routes:
              yes: END
              no: b  # <-
        """,
        "route 'no' from 'a' goes to unknown node 'b'",
    ),
    "to and when together": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - from: a
            to: END
            when: big  # <-
            routes: {yes: END, no: a}
        """,
        "has `to` and `when`",
    ),
    "neither to nor when": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - from: a  # <-
        """,
        "has neither `to` nor `when`",
    ),
    "when without routes": (
        """\
        name: x
        start: a
        nodes: {a: {uses: noop}}
        edges:
          - from: a
            when: big  # <-
        """,
        "has `when` but no `routes",
    ),
    "start not a node": (
        """\
        name: x
        start: b  # <-
        nodes: {a: {uses: noop}}
        edges: [{from: a, to: END}]
        """,
        "start 'b' is not a node; nodes: a",
    ),
    "unreachable node": (
        """\
        name: x
        start: a
        nodes:
          a: {uses: noop}
          b: {uses: noop}  # <-
        edges:
          - {from: a, to: END}
          - {from: b, to: END}
        """,
        "node 'b' cannot be reached from start 'a'",
    ),
    "no outgoing edge": (
        """\
        name: x
        start: a
        nodes:
          a: {uses: noop}
          b: {uses: noop}  # <-
        edges:
          - {from: a, to: b}
        """,
        "node 'b' has no outgoing edge",
    ),
    "two plain edges from one node": (
        """\
        name: x
        start: a
        nodes:
          a: {uses: noop}
          b: {uses: noop}
        edges:
          - {from: a, to: b}
          - {from: a, to: END}  # <-
          - {from: b, to: END}
        """,
        "node 'a' already has an outgoing edge (edges[0], <string>:7)",
    ),
    "cycle with no exit": (
        """\
        name: x
        start: a
        nodes:
          a: {uses: noop}
          b: {uses: noop}  # <-
          c: {uses: noop}
        edges:
          - from: a
            when: big
            routes: {yes: END, no: b}
          - {from: b, to: c}
          - {from: c, to: b}
        """,
        "nodes b, c loop with no way to END",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_each_error_names_its_line(case: str) -> None:
    text, fragment = BAD[case]
    text = textwrap.dedent(text)
    marked = [i + 1 for i, line in enumerate(text.splitlines()) if "# <-" in line]
    assert len(marked) == 1, "a bad workflow marks exactly one line"
    with pytest.raises(GraphSpecError) as info:
        load_workflow(text, toy_registry())
    message = str(info.value)
    assert message.startswith(f"<string>:{marked[0]}: "), message
    assert fragment in message, message
    assert isinstance(info.value, FoveateError) and isinstance(info.value, ValueError)


def test_structure_only_validation_skips_registry_checks() -> None:
    text = LOOP.replace("uses: add\n    params: {amount: 3}", "uses: zoom\n    params: {depth: 2}")
    spec, _ = load_workflow(text, None)
    assert spec.nodes["bump"].uses == "zoom"
    with pytest.raises(GraphSpecError, match="^<string>:6: "):
        load_workflow(text, toy_registry())
    with pytest.raises(GraphSpecError, match="^<string>:8: node 'finish' has no outgoing edge"):
        load_workflow(LOOP.replace("  - {from: finish, to: END}\n", ""), None)


def test_validate_a_spec_built_in_code() -> None:
    spec = WorkflowSpec.model_validate(
        {"name": "x", "start": "a", "nodes": {"a": {"uses": "noop"}}, "edges": [{"from": "a", "to": "a"}]}
    )
    with pytest.raises(GraphSpecError, match="^<spec>: nodes a loop with no way to END"):
        validate_workflow(spec, toy_registry(), SourceMap())
    with pytest.raises(GraphSpecError, match="no way to END"):
        build_graph(spec, toy_registry(), None, State)


def test_registry_lists_names_and_copies_independently() -> None:
    registry = toy_registry()
    assert registry.names() == (("add", "noop"), ("big",))
    with pytest.raises(GraphSpecError, match="unknown node type 'zoom'; known: add, noop"):
        registry.get_node("zoom")
    with pytest.raises(GraphSpecError, match="unknown condition 'huge'; known: big"):
        registry.get_condition("huge")
    assert registry.get_node("add").doc == "Add ``amount`` to x; log the call in the services."
    assert registry.get_condition("big").labels == ("yes", "no")
    extended = registry.copy()
    extended.node("double")(lambda params, services: lambda state: {"x": 2 * state["x"]})
    assert extended.names().nodes == ("add", "double", "noop")
    assert registry.names().nodes == ("add", "noop")
    with pytest.raises(GraphSpecError, match="already registered"):
        extended.node("add")(lambda params, services: lambda state: {})
    noop_params = registry.get_node("noop").params
    assert noop_params.model_validate({}) is not None
    with pytest.raises(ValueError):
        noop_params.model_validate({"extra": 1})


def test_mermaid_has_every_node_and_edge() -> None:
    spec, _ = load_workflow(LOOP, toy_registry())
    text = to_mermaid(spec)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    for expected in (
        "__start__([START])",
        "__end__([END])",
        'n_bump["bump<br/>add"]',
        'n_finish["finish<br/>add"]',
        "__start__ --> n_bump",
        'n_bump -->|"big: yes"| n_finish',
        'n_bump -->|"big: no"| n_bump',
        "n_finish --> __end__",
    ):
        assert f"    {expected}" in lines, text
    assert len(lines) == 9


runner = CliRunner()


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(LOOP)
    return path


@pytest.fixture
def toy_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for foveate.graphs.nodes (written elsewhere) with the toy registry."""
    module = types.ModuleType("foveate.graphs.nodes")
    module.builtin_registry = toy_registry  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "foveate.graphs.nodes", module)


def test_cli_show_prints_mermaid(flow: Path, toy_builtin: None) -> None:
    result = runner.invoke(app, ["graph", "show", str(flow)])
    assert result.exit_code == 0, result.output
    spec, _ = load_workflow(flow, toy_registry())
    assert result.stdout == to_mermaid(spec)
    assert result.stderr == ""


def test_cli_show_checks_against_the_registry(flow: Path, toy_builtin: None) -> None:
    flow.write_text(LOOP.replace("uses: add\n    params: {amount: 3}", "uses: zoom\n    params: {amount: 3}"))
    result = runner.invoke(app, ["graph", "show", str(flow)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"error: {flow}:6: node 'bump' uses unknown node type 'zoom'; known: add, noop" in result.stderr
    unchecked = runner.invoke(app, ["graph", "show", str(flow), "--no-registry-check"])
    assert unchecked.exit_code == 0, unchecked.output
    assert unchecked.stdout.startswith("flowchart TD\n") and 'n_bump["bump<br/>zoom"]' in unchecked.stdout


def test_cli_show_without_the_registry_check_checks_structure(flow: Path) -> None:
    # the test flow's node types are not built in: only a structure check accepts it
    assert runner.invoke(app, ["graph", "show", str(flow)]).exit_code == 2
    result = runner.invoke(app, ["graph", "show", "--no-registry-check", str(flow)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("flowchart TD\n")
    flow.write_text(LOOP.replace("start: bump", "start: bumpp"))
    bad = runner.invoke(app, ["graph", "show", "--no-registry-check", str(flow)])
    assert bad.exit_code == 2
    assert f"error: {flow}:3: start 'bumpp' is not a node" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1  # one line, no traceback


@pytest.mark.parametrize("name", ["direct", "zoom", "full"])
def test_cli_show_draws_a_built_in_workflow_by_name(name: str) -> None:
    from foveate.graphs.nodes import builtin_registry
    from foveate.graphs.workflow import builtin_workflow_path

    result = runner.invoke(app, ["graph", "show", name])
    assert result.exit_code == 0, result.output
    spec, _ = load_workflow(builtin_workflow_path(name), builtin_registry())
    assert result.stdout == to_mermaid(spec)
