# imgshard — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
DATA ?= data/demo
OUT ?= out/demo
EXTRA_ARGS ?=
PYTEST_ARGS ?=

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
.DEFAULT_GOAL := help

.PHONY: help install install-dev demo repro test lint format clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

# Stamp files make re-running `make demo` / `make test` skip pip when nothing changed.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[demo]"
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[test]"
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## create .venv with imgshard and its `imgshard` command (Beam, Pillow)
install-dev: $(VENV)/.installed-dev ## install + TensorFlow, tf.Transform and the test tools

demo: install ## convert the embedded demo dataset (class-sorted digits) into shuffled shards, audit them
	$(BIN)/imgshard demo-data --output $(DATA)
	$(BIN)/imgshard convert --input $(DATA)/train.txt --output $(OUT) --resize shorter:32 \
	  --overwrite $(EXTRA_ARGS)
	$(BIN)/imgshard audit $(OUT) --list $(DATA)/train.txt --decode

repro: install-dev ## the loss-curve bug on the demo data: sorted vs shuffled shards, audited
	$(BIN)/python benchmarks/repro.py --data $(DATA) --out out/repro
	@mkdir -p docs && cp out/repro/loss.png docs/repro-loss.png

test: install-dev ## run the test suite (hermetic; no network)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev ## check style (ruff)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev ## fix style (ruff)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove generated data and outputs (keeps .venv)
	rm -rf data out .pytest_cache
