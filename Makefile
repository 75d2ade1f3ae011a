# foveate: two commands on a fresh machine, `make demo` and `make test`.
# torch goes in first, pinned, so that pip does not fetch a multi-GB CUDA build
# where a CPU wheel is wanted; override TORCH_SPEC on a GPU machine if you like.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test test-serving lint typecheck imports pytest bench bench-fixture train-fixture calibrate-fixture clean docs/web_page.png

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$(TORCH_SPEC)"
	echo "$(TORCH_SPEC)" > $(VENV)/torch-constraint.txt
	$(PIP) install --quiet -c $(VENV)/torch-constraint.txt -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/foveate demo

lint: setup
	$(VENV)/bin/ruff check foveate tests benchmarks examples
	$(VENV)/bin/ruff format --check foveate tests benchmarks examples

typecheck: setup
	$(VENV)/bin/mypy foveate benchmarks

# the layering of docs/architecture.md (contracts in pyproject.toml)
imports: setup
	$(VENV)/bin/lint-imports

pytest: setup
	$(PY) -m pytest -q

test: lint typecheck imports pytest

# foveate against real serving engines on CPU: vLLM (CPU build) serving the tiny VLM, the llama.cpp
# server serving Gemma 3 270M, PostgreSQL checkpoints. Its own venv, cached in
# ~/.cache/foveate/serving-venv (about 15 min cold, of which 7.5 compiling llama.cpp; the wheel is
# cached too). See docs/serving.md.
test-serving: setup
	FOVEATE_PYTHON=$(PY) bash serving/run.sh

bench: bench-fixture

# The embedded tiny VLM: crop vs whole-image accuracy on 300 held-out scenes -> docs/benchmarks/fixture.md
bench-fixture: setup
	$(VENV)/bin/foveate bench fixture --n 300 --out docs/benchmarks/fixture.md

# The abstention gates the embedded tiny VLM ships for its built-in workflows (its weights folder's
# foveate_gates.json; Agent.from_defaults and `make demo` gate with them): each workflow's own answers to
# 200 synthetic scenes of seed 5 (no benchmark page uses that seed), with and without options, at
# alpha 0.1, LAC and CRC. Re-run after re-training or changing a built-in workflow (a test says when).
calibrate-fixture: setup
	scratch=$$(mktemp -d) && for flow in direct zoom full; do \
	  $(VENV)/bin/foveate calibrate --synthetic 200 --seed 5 --workflow $$flow --alpha 0.1 \
	    --method lac,crc --free-text --ship --db $$scratch/calibrations.db || exit 1; done

# The web page's screenshot that the README shows: taken by its browser test (headless Chromium)
docs/web_page.png: setup
	FOVEATE_SCREENSHOT=$@ $(PY) -m pytest -q tests/test_web_page.py

# Re-train the embedded tiny VLM on CPU (seeded; writes foveate/tiny_vlm/weights): the plain-world run,
# then the five harder-world runs (about 2 hours on 2 cores); then `make calibrate-fixture`
train-fixture: setup
	$(PY) -m foveate.tiny_vlm.harder

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
