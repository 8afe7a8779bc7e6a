# Set-up is one idempotent step (`make install`); `make demo` and `make test` both start with it.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint bench mutate clean

install: $(STAMP)

# torch==2.13.0 first: it is the CPU build on this disk; installing the package afterwards finds
# torch satisfied and pulls nothing larger.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/growml fit digits --out runs/demo --overwrite

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check growml cli tests benchmarks mutation
	$(BIN)/ruff format --check growml cli tests benchmarks mutation

# Mutation testing (an hour or more on 2 cores; not part of `make test`). MODULES= picks some of
# growth, losses, runs, metrics; the report is mutation/survivors.md.
mutate: install
	$(BIN)/python -m pip install --quiet -e ".[dev,mutate]"
	$(BIN)/python mutation/mutate.py $(MODULES)

bench: install
	$(BIN)/python benchmarks/train_speed.py

clean:
	rm -rf $(VENV) runs build *.egg-info
