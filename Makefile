# skuvid: `make demo` and `make test` work on a fresh machine (they set everything up first).
# The environment is CPU-only by default; `make demo GPU=1` adds the `gpu` extra (torch, diffusers, ...).
# `make test` always has it: the GPU providers' tests run real diffusers code on tiny models, on the CPU.
PYTHON ?= python3
GPU ?= 0
# Test processes: many tests wait on servers, emulators and subprocesses, so 3 keep 2 cores busy.
TEST_WORKERS ?= 3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
SAMPLES := samples/packshots/.made samples/campaign/template.mp4 samples/training/images/.made
INSTANCE := $(DAGSTER_HOME)/dagster.yaml
ENV_FOR_RUN := $(VENV)/.installed $(if $(filter 1,$(GPU)),$(VENV)/.installed-gpu)

.PHONY: setup demo test dev check bench bench-gpu bench-scale bench-campaign bench-training clean

setup: $(ENV_FOR_RUN) $(SAMPLES) $(INSTANCE)

$(VENV)/.installed: pyproject.toml
	bash scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

$(VENV)/.installed-gpu: $(VENV)/.installed
	$(BIN)/pip install -q -e '.[dev,gpu]'
	touch $@

# File targets: set-up runs once and `make dev` or a second `make demo` reuse what it made.
samples/packshots/.made: samples/make_samples.py samples/catalog.csv samples/brands.yaml | $(VENV)/.installed
	$(BIN)/python -m samples.make_samples
	touch $@

samples/campaign/template.mp4: samples/campaign/make_campaign_samples.py | $(VENV)/.installed
	$(BIN)/python -m samples.campaign.make_campaign_samples

samples/training/images/.made: samples/training/make_training_samples.py | $(VENV)/.installed
	$(BIN)/python -m samples.training.make_training_samples
	touch $@

$(INSTANCE): dagster.yaml | $(VENV)/.installed
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@
	$(BIN)/skuvid setup-instance || { rm -f $@; exit 1; }

demo: setup
	$(BIN)/python -m devkit.demo

test: $(VENV)/.installed-gpu $(SAMPLES) $(INSTANCE)
	$(BIN)/pytest -q -n $(TEST_WORKERS)

dev: setup
	$(BIN)/dagster dev -h 127.0.0.1

check: setup
	$(BIN)/dg check defs

bench: setup
	$(BIN)/python bench/cpu_tier.py

# On a GPU machine with torch, transformers and accelerate and no network: the wheels that
# scripts/fetch-gpu-wheels.sh put in $(GPU_WHEELS) beforehand go into a folder of their own, then the benchmark.
GPU_WHEELS ?= wheels/gpu
GPU_PYTHON_BIN ?= python3
bench-gpu:
	$(GPU_PYTHON_BIN) -m pip install -q --no-index --no-deps --upgrade --target .gpu-bench/site $(GPU_WHEELS)/*.whl
	PYTHONPATH=$(CURDIR)/.gpu-bench/site:$(CURDIR) $(GPU_PYTHON_BIN) -m bench.gpu_clip $(BENCH_GPU_ARGS)

bench-scale: setup
	$(BIN)/python bench/scale.py

bench-campaign: setup
	$(BIN)/python bench/campaign.py

bench-training: setup
	$(BIN)/python bench/training.py

clean:
	rm -rf .data $(DAGSTER_HOME) samples/packshots samples/logos samples/campaign/template.mp4 samples/campaign/logos samples/training/images
