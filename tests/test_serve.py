"""``foveate serve``'s API, driven by the OpenAI Python client against a live server on the tiny VLM: the
answer with foveate's object, an abstention said in words, the models list, and each limit refused with a
4xx JSON error (issue 27, items 1 and 3, part)."""

from __future__ import annotations

import base64
import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from foveate.agent import Agent
from foveate.conformal import SelectiveCalibration
from foveate.imaging import to_data_uri
from foveate.server import ServerLimits, create_app
from foveate.synthetic import generate_scene
from foveate.testing.live_server import live as _live
from foveate.vlm.transformers_vlm import TransformersVLM

ANSWER_NONE = SelectiveCalibration(method="crc", alpha=0.2, n=100, threshold=math.inf, answered=0, wrong=0)


@pytest.fixture(scope="module")
def agents(vlm: TransformersVLM) -> Iterator[dict[str, Agent]]:
    made = {
        "foveate-direct": Agent(vlm, workflow="direct", memory=None, checkpoints=None),
        "foveate-careful": Agent(
            vlm, workflow="direct", memory=None, checkpoints=None, calibration=ANSWER_NONE
        ),
        "foveate-zoom": Agent(vlm, workflow="zoom", memory=None, checkpoints=None),
    }
    yield made
    for agent in made.values():
        agent.close()


@pytest.fixture(scope="module")
def question() -> tuple[str, list[str], str]:
    image, item = generate_scene(7, 0)
    return item.question, list(item.options), to_data_uri(image)


def _messages(text: str, url: str) -> list[dict[str, Any]]:
    return [
        {
            "role": "user",
            "content": [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}],
        }
    ]


def test_the_openai_client_gets_foveates_answer(
    agents: dict[str, Agent], question: tuple[str, list[str], str]
) -> None:
    text, options, url = question
    with _live(create_app(agents)) as base:
        client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0)
        assert {m.id for m in client.models.list()} == {"foveate-direct", "foveate-careful", "foveate-zoom"}
        reply = client.chat.completions.create(
            model="foveate-direct",
            messages=_messages(text, url),
            extra_body={"foveate": {"options": options}},
        )
        extension = (reply.model_extra or {})["foveate"]
        assert reply.choices[0].finish_reason == "stop"
        assert reply.choices[0].message.content == extension["answer"] and extension["answer"] in options
        assert extension["abstained"] is False and extension["run_id"] and extension["trace"]
        assert reply.usage is not None and reply.usage.prompt_tokens == sum(
            extension["tokens"][k] for k in ("visual", "text")
        )
        # the same question to a workflow whose gate answers nothing: an abstention, in words and in fields
        careful = client.chat.completions.create(
            model="foveate-careful",
            messages=_messages(text, url),
            extra_body={"foveate": {"options": options}},
        )
        said = (careful.model_extra or {})["foveate"]
        assert said["abstained"] is True and said["answer"] is None and said["option"] in options
        assert careful.choices[0].message.content == f"I abstain: {said['reason']}"


def test_a_request_cannot_raise_the_servers_budget(
    agents: dict[str, Agent], question: tuple[str, list[str], str]
) -> None:
    text, options, url = question
    asked = {"foveate": {"options": options, "max_total_tokens": 10**9}}
    with _live(create_app(agents)) as base:
        free = openai.OpenAI(base_url=base, api_key="x").chat.completions.create(
            model="foveate-direct", messages=_messages(text, url), extra_body=asked
        )
    with _live(create_app(agents, ServerLimits(max_total_tokens=40))) as base:
        capped = openai.OpenAI(base_url=base, api_key="x").chat.completions.create(
            model="foveate-direct", messages=_messages(text, url), extra_body=asked
        )
    assert free.usage is not None and free.usage.total_tokens > 40  # the question needs more than the cap
    assert capped.usage is not None and capped.usage.total_tokens <= 40  # the server's cap held


@pytest.mark.parametrize(
    ("limits", "change", "status", "says"),
    [
        (ServerLimits(), {"model": "foveate-nope"}, 404, "no model 'foveate-nope'"),
        (ServerLimits(), {"url": "https://example.com/a.png"}, 400, "does not download"),
        (ServerLimits(), {"url": None}, 400, "give one image"),
        (ServerLimits(), {"text": ""}, 400, "no question text"),
        (ServerLimits(), {"url": "data:image/png;base64,AAAA"}, 400, "image"),
        (ServerLimits(max_question_chars=10), {}, 400, "past this server's limit of 10"),
        (ServerLimits(max_pixels=1000), {}, 413, "above the limit of 1,000"),
        (ServerLimits(max_request_bytes=2000), {}, 413, "past this server's limit of 2,000"),
    ],
)
def test_every_limit_is_a_4xx_json_error(
    agents: dict[str, Agent],
    question: tuple[str, list[str], str],
    limits: ServerLimits,
    change: dict[str, Any],
    status: int,
    says: str,
) -> None:
    text, _options, url = question
    text, url = change.get("text", text), change.get("url", url)
    content: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if url is not None:
        content.append({"type": "image_url", "image_url": {"url": url}})
    body = {
        "model": change.get("model", "foveate-direct"),
        "messages": [{"role": "user", "content": content}],
    }
    body["stream"] = change.get("stream", False)
    with _live(create_app(agents, limits)) as base:
        reply = httpx.post(f"{base}/chat/completions", json=body, timeout=120)
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert says in error["message"] and error["code"] and error["type"] == "invalid_request_error"


def test_a_key_is_needed_when_set(agents: dict[str, Agent], question: tuple[str, list[str], str]) -> None:
    text, options, url = question
    with _live(create_app(agents, ServerLimits(api_key="s3cret"))) as base:
        with pytest.raises(openai.AuthenticationError, match="API key"):
            openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
        reply = openai.OpenAI(base_url=base, api_key="s3cret").chat.completions.create(
            model="foveate-direct",
            messages=_messages(text, url),
            extra_body={"foveate": {"options": options}},
        )
        assert reply.choices[0].message.content in options


def test_more_questions_than_the_server_answers_at_once_get_429(
    agents: dict[str, Agent], question: tuple[str, list[str], str]
) -> None:
    """A streamed run holds its slot until its run ends: a second question meanwhile gets 429, streamed or
    not; once the first is read to its end, the slot is free again."""
    text, options, url = question
    body = {"model": "foveate-zoom", "messages": _messages(text, url), "foveate": {"options": options}}
    with (
        _live(create_app(agents, ServerLimits(max_concurrency=1))) as base,
        httpx.Client(timeout=120) as http,
    ):
        with http.stream("POST", f"{base}/chat/completions", json={**body, "stream": True}) as first:
            assert first.status_code == 200
            for streamed in (False, True):
                second = http.post(f"{base}/chat/completions", json={**body, "stream": streamed})
                assert second.status_code == 429, second.text
                assert second.json()["error"]["type"] == "rate_limit_error"
            lines = [line for line in first.iter_lines() if line.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        deadline = time.monotonic() + 30  # the run's thread gives the slot back as it ends
        while (again := http.post(f"{base}/chat/completions", json=body)).status_code == 429:
            assert time.monotonic() < deadline, again.text
            time.sleep(0.1)
        assert again.status_code == 200, again.text


def test_a_chunked_body_past_the_limit_is_413(agents: dict[str, Agent]) -> None:
    """A body with no Content-Length is counted as it arrives, not read whole first."""

    def pieces() -> Iterator[bytes]:
        yield b'{"model": "foveate-direct", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 10_000
        yield b'"}]}'

    with _live(create_app(agents, ServerLimits(max_request_bytes=50_000))) as base:
        reply = httpx.post(f"{base}/chat/completions", content=pieces(), timeout=60)
    assert reply.status_code == 413 and "limit of 50,000 bytes" in reply.json()["error"]["message"]


def test_a_bad_question_is_400_streamed_or_not(
    agents: dict[str, Agent], question: tuple[str, list[str], str]
) -> None:
    text, _options, url = question
    body = {"model": "foveate-direct", "messages": _messages(text, url), "foveate": {"options": ["only"]}}
    with _live(create_app(agents)) as base:
        for streamed in (False, True):
            reply = httpx.post(f"{base}/chat/completions", json={**body, "stream": streamed}, timeout=60)
            assert reply.status_code == 400 and "one option" in reply.json()["error"]["message"], reply.text
        huge = httpx.post(
            f"{base}/chat/completions", json={**body, "foveate": {"max_total_tokens": 10**20}}, timeout=60
        )
        assert huge.status_code == 400 and "max_total_tokens" in huge.json()["error"]["message"], huge.text
        unknown = httpx.get(f"{base}/nowhere", timeout=60)
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


def test_foveate_serve_from_the_command_line(tmp_path: Any, question: tuple[str, list[str], str]) -> None:
    """The command as a user runs it: 127.0.0.1, one workflow, a key from the environment."""
    import os
    import select
    import subprocess
    import sys

    text, options, url = question
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {**os.environ, "HOME": str(tmp_path), "FOVEATE_CONFIG": str(tmp_path / "none.toml")}
    env["FOVEATE_API_KEY"] = "k"
    command = [sys.executable, "-m", "foveate.cli.main", "serve", "--workflow", "direct", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 180)  # never wait forever on a silent server
        assert ready, "foveate serve printed nothing in 180 s"
        first = proc.stdout.readline()
        assert first.startswith(f"serving foveate-direct on http://127.0.0.1:{port}/v1"), first
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=5)
        reply = client.chat.completions.create(
            model="foveate-direct",
            messages=_messages(text, url),
            extra_body={"foveate": {"options": options}},
        )
        said = reply.choices[0].message.content or ""
        assert said in options or said.startswith("I abstain: ")  # the shipped gate decides which
        assert (reply.model_extra or {})["foveate"]["option"] in options
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_streamed_answer_shows_each_node_and_the_search_as_it_goes(
    agents: dict[str, Agent], question: tuple[str, list[str], str]
) -> None:
    """stream=true: a plain OpenAI client reads the answer as content; foveate's object on each chunk says
    which node finished and how many probes the search has spent so far."""
    text, options, url = question
    with _live(create_app(agents)) as base:
        client = openai.OpenAI(base_url=base, api_key="x", max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="foveate-zoom",
                messages=_messages(text, url),
                stream=True,
                stream_options={"include_usage": True},
                extra_body={"foveate": {"options": options}},
            )
        )
    said = [(c.model_extra or {}).get("foveate") for c in chunks]
    nodes = [s["node"] for s in said if s and "messages" in s]
    probes = [s["probes"] for s in said if s and "probes" in s]
    assert nodes == ["zoom", "reason", "abstain"]
    assert probes and probes == sorted(probes) and probes[-1] > 0  # the search, probe by probe
    # every view the search recorded was told as it came, in order: what the web page draws live
    views = [v for s in said if s and "views" in s for v in s["views"]]
    searched = next(s for s in said if s and s.get("node") == "zoom" and "messages" in s)
    assert views and views == searched["visits"]
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    final = next(s for s in said if s and "run_id" in s)
    assert content == (final["answer"] if not final["abstained"] else f"I abstain: {final['reason']}")
    assert final["probes"] == probes[-1] and chunks[-2].choices[0].finish_reason == "stop"
    assert not chunks[-1].choices and chunks[-1].usage is not None  # stream_options.include_usage
    assert chunks[-1].usage.prompt_tokens == final["tokens"]["visual"] + final["tokens"]["text"]


def test_feedback_on_a_run_and_its_refusals(
    agents: dict[str, Agent], question: tuple[str, list[str], str]
) -> None:
    """POST /v1/foveate/feedback: a run this server answered is noted (this agent keeps no memory); an
    unknown run or model is 404, feedback that says nothing is 400, each an OpenAI-style JSON error."""
    text, options, url = question
    with _live(create_app(agents)) as base:
        client = openai.OpenAI(base_url=base, api_key="x", max_retries=0)
        reply = client.chat.completions.create(
            model="foveate-direct",
            messages=_messages(text, url),
            extra_body={"foveate": {"options": options}},
        )
        run_id = (reply.model_extra or {})["foveate"]["run_id"]
        said = httpx.post(
            f"{base}/foveate/feedback", json={"model": "foveate-direct", "run_id": run_id, "correct": False}
        )
        assert said.status_code == 200, said.text
        assert said.json()["correct"] is False and said.json()["memory_run"] is None
        assert said.json()["message"] == f"run {run_id}: wrong, noted (this server keeps no memory)"
        refused = {
            "no_feedback": httpx.post(
                f"{base}/foveate/feedback", json={"model": "foveate-direct", "run_id": run_id}
            ),
            "run_not_found": httpx.post(
                f"{base}/foveate/feedback",
                json={"model": "foveate-direct", "run_id": "nope", "correct": True},
            ),
            "model_not_found": httpx.post(
                f"{base}/foveate/feedback", json={"model": "gpt-4", "run_id": run_id, "correct": True}
            ),
        }
    for code, response in refused.items():
        assert 400 <= response.status_code < 500, response.text
        assert response.json()["error"]["code"] == code


def test_local_file_urls_only_inside_the_folder_the_server_was_given(
    agents: dict[str, Agent], question: tuple[str, list[str], str], tmp_path: Any
) -> None:
    """file:// URLs: read when the server takes local files and the file is in its folder (symbolic links
    and .. resolved first); refused otherwise, each with a 4xx JSON error."""
    text, options, url = question
    shared, private = tmp_path / "shared", tmp_path / "private"
    shared.mkdir()
    private.mkdir()
    scene = base64.b64decode(url.partition(",")[2])
    (shared / "scene.png").write_bytes(scene)
    (private / "secret.png").write_bytes(scene)
    (shared / "link.png").symlink_to(private / "secret.png")

    def ask(base: str, file_url: str) -> httpx.Response:
        body = {
            "model": "foveate-direct",
            "messages": _messages(text, file_url),
            "foveate": {"options": options},
        }
        return httpx.post(f"{base}/chat/completions", json=body, timeout=120)

    with _live(create_app(agents, ServerLimits(local_files=shared))) as base:
        inside = ask(base, (shared / "scene.png").as_uri())
        escaped = ask(base, f"file://{shared}/../private/secret.png")
        linked = ask(base, (shared / "link.png").as_uri())
        remote = ask(base, "file://example.org/etc/passwd")
        nul = ask(base, f"file://{shared}/scene%00.png")
    with _live(create_app(agents)) as base:
        off = ask(base, (shared / "scene.png").as_uri())
    assert inside.status_code == 200, inside.text
    assert inside.json()["foveate"]["option"] in options
    for response, code in [
        (escaped, "outside_local_files"),
        (linked, "outside_local_files"),
        (remote, "bad_file_url"),
        (nul, "bad_file_url"),
        (off, "local_files_off"),
    ]:
        assert 400 <= response.status_code < 500 and response.json()["error"]["code"] == code, response.text
