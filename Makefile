# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test bench lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/envmatrix demo

test: $(BIN)/.installed
	$(BIN)/pytest -q

bench: $(BIN)/.installed
	$(BIN)/python bench/api_economy.py
	$(BIN)/python bench/plan_scale.py

lint: $(BIN)/.installed
	$(BIN)/ruff check cli.py envmatrix rotation tests

clean:
	rm -rf $(VENV) build *.egg-info
