"""``foveate serve`` keeps each user's memory apart (issue 27 item 3, issue 24 item 5): the API key chooses
the memory namespace, a run answered for one key takes no feedback from another, and the runs each stores
are read back from the database in its own namespace only. A namespace header is refused unless the
server was told to take it (behind a proxy that sets it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from foveate.agent import Agent
from foveate.imaging import to_data_uri
from foveate.memory import InsightMemory, SentenceTransformerEmbedder
from foveate.server import AgentsByNamespace, ServerLimits, create_app
from foveate.synthetic import generate_scene
from foveate.testing.live_server import live
from foveate.vlm.transformers_vlm import TransformersVLM

ALICE, BOB = "alice-key-0001", "bob-key-00002"


def _body(image: Image.Image, question: str, options: list[str]) -> dict[str, Any]:
    url = to_data_uri(image)
    content = [{"type": "text", "text": question}, {"type": "image_url", "image_url": {"url": url}}]
    return {
        "model": "foveate-direct",
        "messages": [{"role": "user", "content": content}],
        "foveate": {"options": options},
    }


@pytest.fixture
def spaces(
    vlm: TransformersVLM, minilm: SentenceTransformerEmbedder, tmp_path: Path
) -> Iterator[tuple[AgentsByNamespace, Path]]:
    database, runs = tmp_path / "memory.db", tmp_path / "runs.db"
    with ExitStack() as stack:

        def agents_of(space: str) -> dict[str, Agent]:
            # one checkpoint database for every namespace, as processes behind one address share one: what
            # keeps a run from another namespace's feedback is the run's own namespace, not separate stores
            memory = stack.enter_context(InsightMemory.open(database, namespace=space, embedder=minilm))
            agent = Agent(vlm, workflow="direct", memory=memory, checkpoints=runs)
            stack.callback(agent.close)
            return {"foveate-direct": agent}

        yield AgentsByNamespace("alice", agents_of("alice"), agents_of), database


def _ask(base: str, key: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base}/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=120,
    )


def _feedback(base: str, key: str, run_id: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{base}/foveate/feedback",
        json={"model": "foveate-direct", "run_id": run_id, "correct": True},
        headers={"Authorization": f"Bearer {key}", **headers},
        timeout=120,
    )


def test_each_key_has_its_own_memory(
    spaces: tuple[AgentsByNamespace, Path], minilm: SentenceTransformerEmbedder
) -> None:
    agents, database = spaces
    (image_a, item_a), (image_b, item_b) = generate_scene(7, 0), generate_scene(7, 1)
    limits = ServerLimits(api_key=ALICE, namespace="alice", api_keys={BOB: "bob"})
    with live(create_app(agents, limits)) as base:
        asked_a = _ask(base, ALICE, _body(image_a, item_a.question, list(item_a.options)))
        asked_b = _ask(base, BOB, _body(image_b, item_b.question, list(item_b.options)))
        run_a, run_b = (r.json()["foveate"]["run_id"] for r in (asked_a, asked_b))
        crossed = _feedback(base, BOB, run_a)  # bob cannot judge alice's run: not in his namespace
        said_a, said_b = _feedback(base, ALICE, run_a), _feedback(base, BOB, run_b)
        header_off = _ask(base, BOB, _body(image_b, item_b.question, []), **{"X-Foveate-Namespace": "alice"})
    assert crossed.status_code == 404 and crossed.json()["error"]["code"] == "run_not_found"
    assert said_a.status_code == said_b.status_code == 200, (said_a.text, said_b.text)
    assert header_off.status_code == 400 and header_off.json()["error"]["code"] == "namespace_header_off"
    stored = {}
    for space in ("alice", "bob", "default"):
        with InsightMemory.open(database, namespace=space, embedder=minilm) as memory:
            stored[space] = [run.question for run in memory.runs()]
    assert stored == {"alice": [item_a.question], "bob": [item_b.question], "default": []}
    assert said_a.json()["memory_run"] != said_b.json()["memory_run"]


def test_a_trusted_header_chooses_the_namespace(
    spaces: tuple[AgentsByNamespace, Path], minilm: SentenceTransformerEmbedder
) -> None:
    agents, database = spaces
    image, item = generate_scene(7, 2)
    limits = ServerLimits(namespace="alice", namespace_header=True)
    with live(create_app(agents, limits)) as base:
        asked = httpx.post(
            f"{base}/chat/completions",
            json=_body(image, item.question, list(item.options)),
            headers={"X-Foveate-Namespace": "carol"},
            timeout=120,
        )
        said = httpx.post(
            f"{base}/foveate/feedback",
            json={"model": "foveate-direct", "run_id": asked.json()["foveate"]["run_id"], "correct": False},
            headers={"X-Foveate-Namespace": "carol"},
            timeout=120,
        )
        bad = httpx.post(
            f"{base}/chat/completions",
            json=_body(image, item.question, []),
            headers={"X-Foveate-Namespace": "../alice"},
            timeout=120,
        )
        twice = httpx.post(  # a proxy that added its header beside the client's own
            f"{base}/chat/completions",
            json=_body(image, item.question, []),
            headers=[("X-Foveate-Namespace", "mallory"), ("X-Foveate-Namespace", "alice")],
            timeout=120,
        )
    assert said.status_code == 200, said.text
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_namespace"
    assert twice.status_code == 400 and "2 times" in twice.json()["error"]["message"]
    with InsightMemory.open(database, namespace="carol", embedder=minilm) as memory:
        assert [(run.question, run.correct) for run in memory.runs()] == [(item.question, False)]
    with InsightMemory.open(database, namespace="alice", embedder=minilm) as memory:
        assert list(memory.runs()) == []


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--api-keys", "{keys}"], "cannot read it as JSON"),
        (["--api-keys", "{short}"], "shorter than 8"),
        (["--namespace", "../x"], "../x"),
        (["--api-keys", "{good}", "--namespace-header"], "not both"),
    ],
)
def test_bad_keys_or_namespaces_are_refused_in_one_line_before_loading(
    tmp_path: Path, args: list[str], named: str
) -> None:
    import subprocess
    import sys

    (tmp_path / "keys.json").write_text("{not json")
    (tmp_path / "short.json").write_text('{"abc": "alice"}')
    (tmp_path / "good.json").write_text('{"alice-key-0001": "alice"}')
    files = {k: str(tmp_path / f"{k}.json") for k in ("keys", "short", "good")}
    command = [sys.executable, "-c", "from foveate.cli.main import main; main()", "serve"]
    command += [a.format(**files) for a in args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and named in result.stderr, result.stderr


def test_namespaces_past_the_servers_limit_get_503(spaces: tuple[AgentsByNamespace, Path]) -> None:
    """Each namespace's agents hold database connections: one more than the server keeps is a 503, and
    the namespaces it already has go on being answered."""
    made, _ = spaces
    limited = AgentsByNamespace(made.home, made.models, made.make, limit=2)  # alice and one more
    image, item = generate_scene(7, 3)
    body = _body(image, item.question, list(item.options))
    limits = ServerLimits(namespace="alice", namespace_header=True)
    with live(create_app(limited, limits)) as base:
        said = {
            space: httpx.post(
                f"{base}/chat/completions", json=body, headers={"X-Foveate-Namespace": space}, timeout=120
            )
            for space in ("bob", "carol", "alice")
        }
    assert said["bob"].status_code == 200 and said["alice"].status_code == 200
    assert said["carol"].status_code == 503 and said["carol"].json()["error"]["code"] == "too_many_namespaces"
