# tradescout — one venv, everything from nothing.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test lint typecheck pytest bench clean

$(STAMP): pyproject.toml setup.py discovery/_interleave.c  # the editable install compiles the C
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

## run: discover the demo portfolio against the embedded sandbox (run twice: the 2nd is all cache)
run: $(STAMP)
	$(BIN)/tradescout discover demo --sandbox --data-root data

lint: $(STAMP)
	$(BIN)/ruff check discovery services cache tests bench
	$(BIN)/ruff format --check discovery services cache tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q

## test: ruff, mypy and pytest in a fresh venv
test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
