"""OpenAIVLM against a real OpenAI-compatible server: `transformers serve`, started on 127.0.0.1.

`transformers serve` implements the chat-completions API (images as data URLs included)
but ignores `logprobs`, so it proves the generate path end to end and that a server
without log-probabilities gets a clear error. The log-probability path runs against vLLM
in `make test-serving`. Generated tokens' log-probabilities (``VLMResult.token_logprobs``) are also read
from a fake server in this file, which answers with canned replies and records what it was sent.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fake_openai_server import FakeServer, serving
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foveate.errors import (
    BackendError,
    BudgetExceeded,
    ContextLengthError,
    LogprobsUnavailableError,
    UnsupportedRequestError,
)
from foveate.testing.contract import Check, ContractInputs, contract_checks
from foveate.vlm import OpenAIVLM, TokenBudget, TokenLedger, TransformersVLM, VLMRequest
from foveate.vlm.server_budget import text_bound

PICTURE = np.random.default_rng(7).integers(0, 255, (240, 320, 3), dtype=np.uint8)


def _served(url: str, model_dir: str) -> OpenAIVLM:
    """The client of the served tiny LLaVA, with the visual-token rule read off its own processor (what
    bounds the visual tokens a capped call holds: without it such a call is refused)."""
    from transformers import AutoConfig, AutoProcessor

    from foveate.vlm import builtin_families

    rule = builtin_families().read_rule(
        AutoProcessor.from_pretrained(model_dir), AutoConfig.from_pretrained(model_dir)
    )
    return OpenAIVLM(url, model=model_dir, max_retries=0, token_rule=rule)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tiny_model_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent))
    assert exe, "the transformers CLI is installed with the package"
    port = _free_port()
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [exe, "serve", str(tiny_model_dirs["llava"]), "--device", "cpu"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1.0)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"transformers serve did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_generate_equals_local_model(server: str, tiny_model_dirs: dict[str, Path]) -> None:
    model_dir = str(tiny_model_dirs["llava"])
    remote = _served(server, model_dir)
    local = TransformersVLM(model_dir)
    for question in ("What is the color of the circle?", "Describe the image."):
        req = VLMRequest.from_prompt(question, [PICTURE], max_new_tokens=6)
        ledger = TokenLedger(TokenBudget(max_total_tokens=10_000))
        got = remote.generate(req, ledger)
        want = local.generate(req)
        assert got.text == want.text  # same weights, same processor, greedy: same answer
        assert got.token_logprobs is None and got.confidence is None  # this server returns none
        assert want.token_logprobs is not None
        assert got.usage.generated_tokens == want.usage.generated_tokens
        assert got.usage.prompt_tokens > 0 and ledger.spent.total == got.usage.total


def test_async_generate_runs_concurrently(server: str, tiny_model_dirs: dict[str, Path]) -> None:
    remote = OpenAIVLM(server, model=str(tiny_model_dirs["llava"]), max_retries=0)
    req = VLMRequest.from_prompt("Describe the image.", [PICTURE], max_new_tokens=4)

    async def many() -> list[str]:
        results = await asyncio.gather(*(remote.agenerate(req) for _ in range(4)))
        return [r.text for r in results]

    texts = asyncio.run(many())
    assert len(set(texts)) == 1 and texts[0] == remote.generate(req).text


def test_server_without_logprobs_is_named(server: str, tiny_model_dirs: dict[str, Path]) -> None:
    remote = OpenAIVLM(server, model=str(tiny_model_dirs["llava"]), max_retries=0)
    req = VLMRequest.from_prompt("Is there a circle? Answer Yes or No.", [PICTURE])
    with pytest.raises(LogprobsUnavailableError, match=server.replace(".", r"\.")):
        remote.yes_probability(req)
    with pytest.raises(LogprobsUnavailableError, match="logprobs"):
        remote.score(req, ["Yes", "No"])


def test_dead_server_is_named_quickly() -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    start = time.monotonic()
    with pytest.raises(BackendError, match=rf"cannot reach the model server at {url}"):
        OpenAIVLM(url, timeout=2.0, max_retries=1)
    dead = OpenAIVLM(url, model="m", timeout=2.0, max_retries=1)
    with pytest.raises(BackendError, match="cannot reach"):
        dead.generate(VLMRequest.from_prompt("hi", [PICTURE]))
    assert time.monotonic() - start < 30


def test_a_served_models_profile_comes_from_its_family_or_token_rule() -> None:
    from foveate.vlm.families import qwen2_vl
    from foveate.vlm.openai_vlm import OpenAIVLM
    from foveate.vlm.prompts import ZoomPrompts
    from foveate.zoom import ZoomAgent

    by_rule = OpenAIVLM("http://127.0.0.1:9/v1", model="qwen", token_rule=qwen2_vl.Qwen2VLTokens())
    by_name = OpenAIVLM("http://127.0.0.1:9/v1", model="qwen", family="qwen2_vl")
    for served in (by_rule, by_name):
        assert served.profile.family == "qwen2_vl"
        assert ZoomAgent(served).prompts == qwen2_vl.FAMILY.zoom != ZoomPrompts()
        assert served.profile.token_rule == qwen2_vl.QWEN2_VL  # per-image caps can be met
        assert not served.profile.relevance_maps and not served.profile.prune_methods  # no model internals
    unknown = OpenAIVLM("http://127.0.0.1:9/v1", model="something")
    assert unknown.profile.family == "" and unknown.profile.token_rule is None
    assert ZoomAgent(unknown).prompts == ZoomPrompts()  # ZoomEye's wording


@pytest.mark.parametrize("check", contract_checks(logprobs=False), ids=lambda c: c.name)
def test_the_server_backend_keeps_the_contract(
    server: str, tiny_model_dirs: dict[str, Path], check: Check
) -> None:
    """The VLM contract's checks that need no log-probabilities (this server returns none: the ones that
    read them run against vLLM in ``make test-serving``), and that scoring is refused without them."""
    check.run(_served(server, str(tiny_model_dirs["llava"])), ContractInputs())


def test_async_calls_work_across_event_loops(server: str, tiny_model_dirs: dict[str, Path]) -> None:
    """Two ``asyncio.run`` in a row on one backend: the second must not reuse the first loop's pooled
    connections (that failed with "Event loop is closed")."""
    remote = OpenAIVLM(server, model=str(tiny_model_dirs["llava"]), max_retries=0)
    req = VLMRequest.from_prompt("Describe the image.", [PICTURE], max_new_tokens=3)
    first = asyncio.run(remote.agenerate(req))
    second = asyncio.run(remote.agenerate(req))
    assert first.text == second.text


# ---------------------------------------------------------------------------- a fake server, for logprobs
LOGPROBS = [-0.1, -0.7, -0.05, -0.002]


@pytest.fixture
def with_logprobs() -> Iterator[FakeServer]:
    yield from serving(FakeServer("a red square", LOGPROBS))


@pytest.fixture
def without_logprobs() -> Iterator[FakeServer]:
    yield from serving(FakeServer("a red square", None))


@pytest.fixture
def refusing_logprobs() -> Iterator[FakeServer]:
    yield from serving(FakeServer("a red square", LOGPROBS, refuse_logprobs=True))


def test_generate_reads_each_tokens_logprob(with_logprobs: FakeServer) -> None:
    """``generate`` asks for ``logprobs`` (and one alternative: llama-cpp-python's server returns none
    without ``top_logprobs``) and returns them; the ledger holds and is charged as before: the server's
    reported usage."""
    remote = OpenAIVLM(with_logprobs.url, model="fake", max_retries=0, family="llava")
    req = VLMRequest.from_prompt("What is in the picture?", [PICTURE], max_new_tokens=6, stop=["."])
    ledger = TokenLedger(TokenBudget(max_total_tokens=10_000))
    results = [remote.generate(req, ledger), asyncio.run(remote.agenerate(req, ledger))]
    for body in with_logprobs.bodies:
        assert body["logprobs"] is True and body["top_logprobs"] == 1
        assert body["max_tokens"] == 6 and body["stop"] == ["."]
    for result in results:
        assert result.text == "a red square" and result.token_logprobs == LOGPROBS
        assert result.confidence == pytest.approx(math.exp(sum(LOGPROBS) / len(LOGPROBS)))
        assert result.usage.generated_tokens == 4 and result.usage.prompt_tokens == 40
    assert ledger.calls == 2 and ledger.spent.total == sum(r.usage.total for r in results)
    check = next(c for c in contract_checks(logprobs=False) if c.name == "generated_logprobs_are_logprobs")
    check.run(remote, ContractInputs())


def test_a_server_without_logprobs_still_generates(without_logprobs: FakeServer) -> None:
    remote = OpenAIVLM(without_logprobs.url, model="fake", max_retries=0, family="llava")
    req = VLMRequest.from_prompt("What is in the picture?", [PICTURE])
    for result in (remote.generate(req), asyncio.run(remote.agenerate(req))):
        assert result.text == "a red square" and result.usage.generated_tokens == 4
        assert result.token_logprobs is None and result.confidence is None
    assert all(body["logprobs"] is True for body in without_logprobs.bodies)


def test_a_server_refusing_logprobs_is_asked_again_without(refusing_logprobs: FakeServer) -> None:
    """A server that rejects the ``logprobs`` field (HTTP 400 naming it) gets the request again without it,
    within the same hold on the ledger, and is not asked for them again."""
    remote = OpenAIVLM(refusing_logprobs.url, model="fake", max_retries=0, family="llava")
    req = VLMRequest.from_prompt("What is in the picture?", [PICTURE])
    ledger = TokenLedger(TokenBudget(max_total_tokens=10_000))
    first = remote.generate(req, ledger)
    assert first.text == "a red square" and first.token_logprobs is None
    assert ["logprobs" in b for b in refusing_logprobs.bodies] == [True, False]
    again = asyncio.run(remote.agenerate(req, ledger))
    assert again.text == "a red square" and ["logprobs" in b for b in refusing_logprobs.bodies] == [
        True,
        False,
        False,
    ]
    assert ledger.calls == 2 and ledger.spent.total == first.usage.total + again.usage.total
    with pytest.raises(LogprobsUnavailableError):
        remote.yes_probability(req)  # a probe cannot do without them: refused, never guessed


def test_other_http_errors_still_fail_generation(refusing_logprobs: FakeServer) -> None:
    """Only a refusal that names ``logprobs`` is retried: the server's 400 is kept as the error otherwise."""
    refusing_logprobs.refuse_logprobs = False
    refusing_logprobs.reply = lambda body: (400, {"error": {"message": "context too long"}})  # type: ignore[method-assign]
    remote = OpenAIVLM(refusing_logprobs.url, model="fake", max_retries=0, family="llava")
    with pytest.raises(BackendError, match="context too long"):
        remote.generate(VLMRequest.from_prompt("hi", [PICTURE]))
    assert len(refusing_logprobs.bodies) == 1


# ---------------------------------------------------------------------------- budgets against a server
def test_a_capped_call_with_no_visual_bound_is_refused_before_it_is_sent(with_logprobs: FakeServer) -> None:
    """The 605-of-100 case: a server reporting 600 prompt tokens, a 100-token budget and a model of no
    declared family. Nothing bounds the image's tokens, so the call is refused and never sent (before,
    it went through and the ledger read 605 spent of 100)."""
    with_logprobs.usage = {"prompt_tokens": 600, "completion_tokens": 5, "total_tokens": 605}
    remote = OpenAIVLM(with_logprobs.url, model="fake", max_retries=0)
    ledger = TokenLedger(TokenBudget(max_total_tokens=100))
    with pytest.raises(UnsupportedRequestError, match=r"100-token budget.*--family"):
        remote.generate(VLMRequest.from_prompt("What is it?", [PICTURE], max_new_tokens=5), ledger)
    assert with_logprobs.bodies == [] and ledger.spent.total == 0
    free = TokenLedger()  # no cap: nothing to hold, the call runs and is charged what was reported
    assert remote.generate(VLMRequest.from_prompt("What is it?", [PICTURE]), free).usage.total == 605


def test_an_overrun_is_recorded_and_stops_the_question(with_logprobs: FakeServer) -> None:
    remote = OpenAIVLM(with_logprobs.url, model="fake", max_retries=0, family="llava")
    request = VLMRequest.from_prompt("What is it?", [PICTURE], max_new_tokens=5)
    with_logprobs.usage = {"prompt_tokens": 5000, "completion_tokens": 5, "total_tokens": 5005}  # lies
    ledger = TokenLedger(TokenBudget(max_total_tokens=6000))
    remote.generate(request, ledger)
    assert len(ledger.overruns) == 1 and ledger.overruns[0].used == 5005
    with pytest.raises(BudgetExceeded, match="went over what it held"):
        remote.generate(request, ledger)
    assert len(with_logprobs.bodies) == 1  # the second call was never sent


def test_generation_is_capped_at_what_the_budget_has_left(with_logprobs: FakeServer) -> None:
    remote = OpenAIVLM(with_logprobs.url, model="fake", max_retries=0, family="llava")
    request = VLMRequest.from_prompt("What is it?", [PICTURE], max_new_tokens=4000)
    ledger = TokenLedger(TokenBudget(max_total_tokens=1000))
    remote.generate(request, ledger)
    sent = with_logprobs.bodies[0]["max_tokens"]
    bound = 576 + text_bound(request)  # LLaVA-1.5's 24 x 24 patches for any image
    assert sent == 1000 - bound < 4000


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    limit=st.integers(min_value=1, max_value=20_000),
    reports=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=5),
    new_tokens=st.integers(min_value=1, max_value=600),
)
def test_a_budget_is_never_exceeded_silently(
    with_logprobs: FakeServer, limit: int, reports: list[int], new_tokens: int
) -> None:
    """Over random budgets and reported usages (some above any estimate): each call is either refused
    before it is sent, or sent; a report above the hold is an overrun on the ledger, after which no call
    is sent; without an overrun the spend never passes the cap."""
    remote = OpenAIVLM(with_logprobs.url, model="fake", max_retries=0, family="llava")
    ledger = TokenLedger(TokenBudget(max_total_tokens=limit))
    request = VLMRequest.from_prompt("What is it?", [PICTURE], max_new_tokens=new_tokens)
    for prompt in reports:
        with_logprobs.usage = {"prompt_tokens": prompt, "completion_tokens": 1, "total_tokens": prompt + 1}
        sent_before, overran_before = len(with_logprobs.bodies), bool(ledger.overruns)
        try:
            remote.generate(request, ledger)
        except BudgetExceeded:
            assert len(with_logprobs.bodies) == sent_before  # refused before it was sent
            continue
        assert not overran_before  # nothing is sent once a call went over
        assert with_logprobs.bodies[-1]["max_tokens"] <= limit
        if not ledger.overruns:
            assert ledger.spent.total <= limit
    with_logprobs.bodies.clear()


def test_after_an_overrun_the_workflow_makes_no_further_call(with_logprobs: FakeServer) -> None:
    """Across nodes too: the state carries the overrun, so every later node's ledger refuses, and the
    answer says which call went over and by how much."""
    from foveate import Agent

    with_logprobs.usage = {"prompt_tokens": 5000, "completion_tokens": 5, "total_tokens": 5005}
    remote = OpenAIVLM(with_logprobs.url, model="fake", max_retries=0, family="llava")
    budget = TokenBudget(max_total_tokens=8000)
    with Agent(remote, workflow="full", budget=budget, memory=None, checkpoints=None) as agent:
        answer = agent.ask("What is the color of the star?", image=PICTURE, options=["red", "blue"])
    assert len(with_logprobs.bodies) == 1  # the first call overspent; nothing was sent after it
    assert answer.overruns and "5005 tokens against the" in answer.overruns[0]
    assert answer.text is None and answer.tokens.total == 5005


def test_a_prompt_past_the_servers_window_is_one_clear_error(with_logprobs: FakeServer) -> None:
    """A server checks its own window before its model runs (vLLM answers HTTP 400): the refusal is a
    ``ContextLengthError`` naming the server and its words, not a generic backend failure."""
    with_logprobs.window = 4096
    vlm = OpenAIVLM(with_logprobs.url, "fake")
    with pytest.raises(ContextLengthError, match=r"127\.0\.0\.1.*maximum context length is 4096"):
        vlm.generate(VLMRequest.from_prompt("What? " * 2000))
    assert vlm.generate(VLMRequest.from_prompt("What?")).text == "a red square"
