"""OpenAIVLM against a real OpenAI-compatible server: `transformers serve`, started on 127.0.0.1.

`transformers serve` implements the chat-completions API (images as data URLs included)
but ignores `logprobs`, so it proves the generate path end to end and that a server
without log-probabilities gets a clear error. The log-probability path runs against vLLM
in `make test-serving`.
"""

from __future__ import annotations

import asyncio
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

from foveate.errors import BackendError, LogprobsUnavailableError
from foveate.testing.contract import Check, ContractInputs, contract_checks
from foveate.vlm import OpenAIVLM, TokenBudget, TokenLedger, TransformersVLM, VLMRequest

PICTURE = np.random.default_rng(7).integers(0, 255, (240, 320, 3), dtype=np.uint8)


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
    remote = OpenAIVLM(server, model=model_dir, max_retries=0)
    local = TransformersVLM(model_dir)
    for question in ("What is the color of the circle?", "Describe the image."):
        req = VLMRequest.from_prompt(question, [PICTURE], max_new_tokens=6)
        ledger = TokenLedger(TokenBudget(max_total_tokens=10_000))
        got = remote.generate(req, ledger)
        want = local.generate(req)
        assert got.text == want.text  # same weights, same processor, greedy: same answer
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
    check.run(OpenAIVLM(server, model=str(tiny_model_dirs["llava"]), max_retries=0), ContractInputs())


def test_async_calls_work_across_event_loops(server: str, tiny_model_dirs: dict[str, Path]) -> None:
    """Two ``asyncio.run`` in a row on one backend: the second must not reuse the first loop's pooled
    connections (that failed with "Event loop is closed")."""
    remote = OpenAIVLM(server, model=str(tiny_model_dirs["llava"]), max_retries=0)
    req = VLMRequest.from_prompt("Describe the image.", [PICTURE], max_new_tokens=3)
    first = asyncio.run(remote.agenerate(req))
    second = asyncio.run(remote.agenerate(req))
    assert first.text == second.text
