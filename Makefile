# imgshard — `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
DEMO_DATA ?= data/demo
DEMO_OUT ?= out/demo
EXTRA_ARGS ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=
# pillow-simd: Pillow's resampling vectorized, built from its sdist for AVX2 (the SIMD level
# is fixed when it compiles): make install-simd, and the small venv its tests compare with.
PILLOW_SIMD ?= pillow-simd==12.1.1.post0
SIMD_VENV ?= .venv-simd
SIMD_CC ?= cc -mavx2
# make train: the demo shards by default; e.g. make train DATA=gs://bucket/imagenet EPOCHS=90 \
#   IMAGE_SIZE=224 ALPHA=1.0 BATCH_SIZE=256 LR=0.1 WARMUP_EPOCHS=5 MODEL_DIR=gs://bucket/runs/m
# Flink: a job server jar (Beam's runner jars are not served here; see deploy/README.md) turns
# on the tests that run the job on a real cluster, with the SDK side at the jar's Beam version
# in a venv of its own (.venv-flink: Beam, imgshard, no TensorFlow).
IMGSHARD_FLINK_JOB_SERVER_JAR ?=
FLINK_BEAM_VERSION ?= $(shell echo "$(notdir $(IMGSHARD_FLINK_JOB_SERVER_JAR))" | \
  sed -n 's/.*-\([0-9][0-9]*\.[0-9][0-9]*\.[0-9][0-9]*\)[^0-9]*\.jar$$/\1/p')
FLINK_VENV ?= .venv-flink
DATA ?= $(DEMO_OUT)
MODEL_DIR ?= out/train
MODEL ?= mobilenet
EPOCHS ?= 15
IMAGE_SIZE ?= 32
ALPHA ?= 0.25
BATCH_SIZE ?= 64
LR ?= 0.4
WARMUP_EPOCHS ?= 1
TRAIN_ARGS ?=

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
.DEFAULT_GOAL := help

.PHONY: help install install-dev install-simd uninstall-simd simd-venv simd-lib flink-venv demo repro train bench bench-fixed bench-resume bench-input bench-image bench-train flink-up flink-down test lint format clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

# Stamp files make re-running `make demo` / `make test` skip pip when nothing changed.
# A pip install brings Pillow back over pillow-simd: after one, keep_simd swaps it out again.
keep_simd = @if [ -f $(VENV)/.simd ]; then $(MAKE) --no-print-directory _swap-in-simd; fi

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[demo]"
	$(keep_simd)
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[test]"
	$(keep_simd)
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## create .venv with imgshard and its `imgshard` command (Beam, Pillow)
install-dev: $(VENV)/.installed-dev ## install + TensorFlow, tf.Transform and the test tools

install-simd: install ## opt-in: pillow-simd for Pillow in .venv (AVX2, a C compiler, libjpeg/zlib headers): ~2x faster per image, other bytes
	@grep -qw avx2 /proc/cpuinfo || { echo "make install-simd: this CPU has no AVX2, which the build targets" >&2; exit 1; }
	@$(MAKE) --no-print-directory _swap-in-simd
	@touch $(VENV)/.simd
	@$(BIN)/python -c "from imgshard.transforms.image import image_library as l; print('image library:', l())"

uninstall-simd: ## back to Pillow in .venv
	$(PIP) uninstall -y pillow-simd
	$(PIP) install --force-reinstall --no-deps "$$(grep -o '"pillow[<>=,0-9.]*"' pyproject.toml | tr -d '"')"
	@rm -f $(VENV)/.simd
	@$(BIN)/python -c "from imgshard.transforms.image import image_library as l; print('image library:', l())"

# --no-cache-dir: pip's wheel cache is keyed by the sdist, not by SIMD_CC, so a cached build
# could carry other SIMD flags than the ones asked for.
_swap-in-simd:
	$(PIP) uninstall -y pillow
	CC="$(SIMD_CC)" $(PIP) install --no-cache-dir --force-reinstall --no-deps \
	  --no-binary pillow-simd "$(PILLOW_SIMD)"

# tests/test_simd.py compares pillow-simd's output with Pillow's through transforms/image.py:
# a venv with only numpy, pillow-simd and imgshard's code (no Beam, no TensorFlow).
$(SIMD_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SIMD_VENV)
	$(SIMD_VENV)/bin/python -m pip --disable-pip-version-check -q install numpy
	CC="$(SIMD_CC)" $(SIMD_VENV)/bin/python -m pip --disable-pip-version-check -q install \
	  --no-binary pillow-simd "$(PILLOW_SIMD)"
	$(SIMD_VENV)/bin/python -m pip --disable-pip-version-check -q install --no-deps -e .
	@touch $@

# The Beam version is in the stamp's name: another jar's version builds the venv anew.
$(FLINK_VENV)/.beam-$(FLINK_BEAM_VERSION): pyproject.toml
	@[ -f "$(IMGSHARD_FLINK_JOB_SERVER_JAR)" ] || { echo "make flink-venv: IMGSHARD_FLINK_JOB_SERVER_JAR='$(IMGSHARD_FLINK_JOB_SERVER_JAR)' is not a file" >&2; exit 1; }
	@[ -n "$(FLINK_BEAM_VERSION)" ] || { echo "make flink-venv: no Beam version X.Y.Z in the name of $(IMGSHARD_FLINK_JOB_SERVER_JAR) (beam-runners-flink-*-job-server-X.Y.Z.jar)" >&2; exit 1; }
	rm -rf $(FLINK_VENV) && $(PYTHON) -m venv $(FLINK_VENV)
	$(FLINK_VENV)/bin/python -m pip --disable-pip-version-check -q install \
	  "apache-beam[gcp]==$(FLINK_BEAM_VERSION)" \
	  $$(sed -n '/^dependencies = \[/,/^\]/p' pyproject.toml | grep -o '"[a-z][^"]*"' | grep -v apache-beam | tr -d '"')
	$(FLINK_VENV)/bin/python -m pip --disable-pip-version-check -q install --no-deps -e .
	@touch $@

flink-venv: $(FLINK_VENV)/.beam-$(FLINK_BEAM_VERSION) ## the SDK side at a job server's Beam version (IMGSHARD_FLINK_JOB_SERVER_JAR=...; make test builds it when set)

simd-venv: $(SIMD_VENV)/.installed ## the small pillow-simd venv the tests compare Pillow with (make test builds it when it can)

demo: install ## convert the embedded demo dataset (class-sorted digits) into shuffled shards, audit them
	$(BIN)/imgshard demo-data --output $(DEMO_DATA)
	$(BIN)/imgshard convert --input $(DEMO_DATA)/train.txt --output $(DEMO_OUT) --resize shorter:32 \
	  --overwrite $(EXTRA_ARGS)
	$(BIN)/imgshard audit $(DEMO_OUT) --list $(DEMO_DATA)/train.txt --decode

repro: install-dev ## the loss-curve bug on the demo data: sorted vs shuffled shards, audited
	$(BIN)/python benchmarks/repro.py --data $(DEMO_DATA) --out out/repro
	@mkdir -p docs && cp out/repro/loss.png docs/repro-loss.png

train: install-dev ## train MobileNet on DATA (default: the demo shards, a few minutes on CPU)
	@if [ "$(DATA)" = "$(DEMO_OUT)" ]; then \
	  [ -f $(DEMO_OUT)/dataset.json ] || $(MAKE) demo; \
	  [ "$(MODEL_DIR)" != out/train ] || rm -rf out/train; \
	fi
	$(BIN)/imgshard-train --data $(DATA) --model-dir $(MODEL_DIR) --model $(MODEL) \
	  --epochs $(EPOCHS) --image-size $(IMAGE_SIZE) --alpha $(ALPHA) --batch-size $(BATCH_SIZE) \
	  --lr $(LR) --warmup-epochs $(WARMUP_EPOCHS) $(TRAIN_ARGS)

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[bench,test]"
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed

bench: $(VENV)/.installed-bench ## conversion vs the bare limit, growth, shuffle volume; then bench-fixed (benchmarks/RESULTS.md, RESULTS-fixed.md)
	$(BIN)/python benchmarks/conversion.py $(BENCH_ARGS)
	@$(MAKE) --no-print-directory bench-fixed

bench-fixed: $(VENV)/.installed-bench ## a run's fixed cost and end to end vs the bare loop, Pillow and pillow-simd side by side (benchmarks/RESULTS-fixed.md)
	@grep -qw avx2 /proc/cpuinfo && $(MAKE) --no-print-directory simd-lib \
	  || echo "make bench-fixed: no pillow-simd build here (no AVX2 or no compiler): Pillow only"
	$(BIN)/python benchmarks/fixed_cost.py $(BENCH_FIXED_ARGS)

# pillow-simd on its own, for the benchmarks: put first on PYTHONPATH, it shadows .venv's Pillow
# in the driver, its workers and the bare loop alike, so both builds run from one venv.
SIMD_LIB ?= .cache/pillow-simd
simd-lib: $(SIMD_LIB)/.installed ## pillow-simd in .cache/pillow-simd (PYTHONPATH=.cache/pillow-simd picks it)

$(SIMD_LIB)/.installed: | $(VENV)/.installed
	CC="$(SIMD_CC)" $(PIP) install --no-cache-dir --no-deps --upgrade --target $(SIMD_LIB) \
	  --no-binary pillow-simd "$(PILLOW_SIMD)"
	@touch $@

bench-resume: $(VENV)/.installed-bench ## finishing a run killed at 80% vs a full run (benchmarks/RESULTS-resume.md)
	$(BIN)/python benchmarks/resume.py

bench-image: $(VENV)/.installed-bench ## per-image decode+resize paths: CPU ms vs fidelity (benchmarks/RESULTS-image.md)
	$(BIN)/python benchmarks/image_paths.py

bench-input: install-dev ## input pipeline images/s vs a bare read+decode loop (benchmarks/RESULTS-input.md)
	$(BIN)/python benchmarks/input_pipeline.py

bench-train: install-dev ## training images/s vs the model's synthetic-input ceiling (benchmarks/RESULTS-train.md)
	@[ -f $(DEMO_OUT)/dataset.json ] || $(MAKE) demo
	$(BIN)/python benchmarks/train.py --data $(DEMO_OUT) $(BENCH_ARGS)

# With IMGSHARD_FLINK_JOB_SERVER_JAR, the SDK workers (and the printed submit command) use
# .venv-flink, at that jar's Beam version.
flink-up: install ## start a real Flink 1.20 session cluster on loopback (1 JobManager, 2 TaskManagers under supervisors; SDK workers started by each)
	@if [ -n "$(IMGSHARD_FLINK_JOB_SERVER_JAR)" ]; then $(MAKE) --no-print-directory flink-venv; fi
	PYTHON=$(abspath $(if $(IMGSHARD_FLINK_JOB_SERVER_JAR),$(FLINK_VENV),$(VENV))/bin/python) \
	  JOB_SERVER_JAR="$(IMGSHARD_FLINK_JOB_SERVER_JAR)" deploy/flink/local-cluster.sh up

flink-down: ## stop the cluster of make flink-up
	deploy/flink/local-cluster.sh down

test: install-dev ## run the test suite (hermetic; no network)
	@grep -qw avx2 /proc/cpuinfo && $(MAKE) --no-print-directory simd-venv \
	  || echo "make test: no pillow-simd venv here (no AVX2 or no compiler): tests/test_simd.py skips"
	@if [ -z "$(IMGSHARD_FLINK_JOB_SERVER_JAR)" ]; then \
	  echo "make test: no IMGSHARD_FLINK_JOB_SERVER_JAR: the tests that run the job on Flink skip"; \
	elif [ ! -f "$(IMGSHARD_FLINK_JOB_SERVER_JAR)" ]; then \
	  echo "make test: IMGSHARD_FLINK_JOB_SERVER_JAR=$(IMGSHARD_FLINK_JOB_SERVER_JAR) is not a file: the tests that run the job on Flink skip"; \
	else $(MAKE) --no-print-directory flink-venv; fi
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install-dev ## check style (ruff)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install-dev ## fix style (ruff)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: ## remove generated data and outputs (keeps .venv)
	rm -rf data out .pytest_cache
