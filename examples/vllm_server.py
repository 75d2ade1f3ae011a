"""Point foveate at an OpenAI-compatible model server (vLLM, SGLang, llama.cpp server, Ollama).

With a real server (start vLLM with log-probabilities enabled, which scoring and zoom need)::

    vllm serve Qwen/Qwen2.5-VL-7B-Instruct --max-logprobs 20
    .venv/bin/python examples/vllm_server.py --endpoint http://127.0.0.1:8000/v1 \\
        --model Qwen/Qwen2.5-VL-7B-Instruct --image photo.png --question "What colour is the car?" \\
        --options red,blue,white,black

Without ``--endpoint`` (CI, offline) it starts a local OpenAI-compatible server itself, ``transformers
serve`` on the embedded tiny VLM (the same way ``tests/test_openai_vlm.py`` does), asks one free-text
question through it, and shuts it down. ``transformers serve`` returns no log-probabilities, so only
free-text answers work against it; the script shows the error a server without them gives.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from foveate import Agent, TokenBudget
from foveate.errors import FoveateError, LogprobsUnavailableError
from foveate.synthetic import crop_around, generate_scene, union_box
from foveate.tiny_vlm import default_model_path
from foveate.vlm import OpenAIVLM


@contextmanager
def local_server(model: Path, log: Path) -> Iterator[str]:
    """``transformers serve MODEL`` on a free local port; yields its ``/v1`` URL, stops it on exit."""
    exe = shutil.which("transformers", path=str(Path(sys.executable).parent)) or shutil.which("transformers")
    if exe is None:
        raise SystemExit("the `transformers` command is not installed (it comes with transformers)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    command = [exe, "serve", str(model), "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:  # wait until it answers
            try:
                httpx.get(f"{url}/health", timeout=1.0)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the local server did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield f"{url}/v1"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ask_real_server(args: argparse.Namespace) -> None:
    """A real vLLM server: scored options, zoom search and the gate all work (logprobs enabled)."""
    vlm = OpenAIVLM(args.endpoint, model=args.model)  # model: default, the first one the server lists
    options = [o.strip() for o in (args.options or "").split(",") if o.strip()]
    budget = TokenBudget(max_total_tokens=args.max_total_tokens)
    with Agent(vlm, workflow=args.workflow, memory=None, budget=budget) as agent:
        answer = agent.ask(args.question, image=args.image, options=options or None)
    print(f"model: {vlm.model_id}")
    print(f"answer: {answer.text}")
    if answer.confidence is not None:
        print(f"confidence: {answer.confidence:.3f}")
    print(f"tokens: {answer.tokens.total} (as the server reported them)  latency: {answer.latency_s:.1f} s")
    for step in answer.trace:
        print(f"  {step}")


def ask_local_server() -> None:
    """Offline: serve the tiny VLM locally and ask one free-text question through HTTP."""
    image, item = generate_scene(seed=7, index=0)
    # The tiny model sees small targets only up close: ask about a crop around the target.
    crop, _ = crop_around(image, union_box(item), None, np.random.default_rng(0))
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_server(default_model_path(), Path(tmp) / "serve.log") as url,
    ):
        print(f"server: {url} (transformers serve, started by this script)")
        vlm = OpenAIVLM(url, model=str(default_model_path()), max_retries=0)
        with Agent(vlm, workflow="direct", memory=None) as agent:  # one call: answer from the image
            answer = agent.ask(item.question, image=crop)  # no options: a free-text answer
            print(f"question: {item.question}")
            text = answer.text.strip() if answer.text else answer.text
            print(f"answer: {text}  (right answer: {item.answer})")
            print(f"tokens: {answer.tokens.total} (as the server reported them)")
            try:  # scoring options needs log-probabilities, which this server does not return
                agent.ask(item.question, image=crop, options=item.options)
            except LogprobsUnavailableError as exc:
                print(f"scored options need logprobs: {exc}")
    print("server stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description="Ask a question through an OpenAI-compatible VLM server.")
    parser.add_argument("--endpoint", help="Server URL, e.g. http://127.0.0.1:8000/v1 [start a local one].")
    parser.add_argument("--model", help="Model name on the server [the first one it lists].")
    parser.add_argument("--image", type=Path, help="Image file (with --endpoint).")
    parser.add_argument("--question", help="The question (with --endpoint).")
    parser.add_argument("--options", help="Comma-separated options (scored; needs logprobs).")
    parser.add_argument("--workflow", default="zoom", help="Built-in workflow or YAML file [zoom].")
    parser.add_argument("--max-total-tokens", type=int, default=None, help="Token budget per question.")
    args = parser.parse_args()
    if args.endpoint is None:
        ask_local_server()
        return
    if args.image is None or args.question is None:
        parser.error("--endpoint needs --image and --question")
    try:
        ask_real_server(args)
    except FoveateError as exc:  # server unreachable, no logprobs, over budget...: one line, no traceback
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
