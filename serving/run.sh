#!/usr/bin/env bash
# `make test-serving`: foveate against real serving engines, on this machine's CPU.
#   1. the serving venv (vLLM CPU build + llama.cpp server), built or reused: serving/setup_venv.sh
#   2. a throwaway PostgreSQL server for the checkpoint test (.ci/postgres.sh), unless one is running
#   3. the tests in serving/ (the foveate client side runs from .venv; the servers from the serving venv)
# FOVEATE_SERVING_BENCH_OUT=docs/benchmarks/serving.md writes the concurrency report there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${FOVEATE_PYTHON:-.venv/bin/python}"
start=$(date +%s)

bash serving/setup_venv.sh
export FOVEATE_SERVING_PYTHON="${FOVEATE_SERVING_VENV:-$HOME/.cache/foveate/serving-venv}/bin/python"
echo "test-serving: serving venv ready after $(($(date +%s) - start)) s"

if [ -z "${FOVEATE_TEST_DATABASE_URL:-}" ]; then
    # shellcheck source=../.ci/postgres.sh
    source .ci/postgres.sh
    foveate_pg_start || true
    trap foveate_pg_stop EXIT
fi

"$(dirname "$PY")/ruff" check serving
"$(dirname "$PY")/ruff" format --check serving

"$PY" -m pytest -p no:cacheprovider -q -s -o addopts="-ra" serving
echo "test-serving: passed in $(($(date +%s) - start)) s"
