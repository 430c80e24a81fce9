# Two commands from a fresh clone: `make serve` and `make test`. Both create or reuse .venv;
# serving installs only what the server needs, testing adds the test toolchain.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SUM    := $(shell cksum pyproject.toml | cut -d' ' -f1)
RUNTIME := $(VENV)/.runtime-$(SUM)
STAMP  := $(VENV)/.installed-$(SUM)

.PHONY: serve test lint typecheck unit bench clean

$(RUNTIME): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e .
	rm -f $(VENV)/.runtime-* && touch $@

$(STAMP): $(RUNTIME)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

serve: $(RUNTIME)
	$(BIN)/seedmmo serve $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict src
	$(BIN)/mypy --strict examples

unit: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/tick.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
