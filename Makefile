# skuvid: `make demo` and `make test` work on a fresh machine (they set everything up first).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home

.PHONY: setup samples instance demo test dev check bench bench-gpu bench-scale bench-campaign bench-training clean

setup: $(VENV)/.installed samples instance

$(VENV)/.installed: pyproject.toml
	bash scripts/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,gpu]'
	touch $@

samples: $(VENV)/.installed
	$(BIN)/python samples/make_samples.py
	$(BIN)/python samples/campaign/make_campaign_samples.py
	$(BIN)/python samples/training/make_training_samples.py

instance: $(VENV)/.installed
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/skuvid setup-instance

demo: setup
	$(BIN)/skuvid demo

test: setup
	$(BIN)/pytest -q

dev: setup
	$(BIN)/dagster dev -h 127.0.0.1

check: setup
	$(BIN)/dg check defs

bench: setup
	$(BIN)/python bench/cpu_tier.py

bench-gpu: setup
	$(BIN)/python -m bench.gpu_clip

bench-scale: setup
	$(BIN)/python bench/scale.py

bench-campaign: setup
	$(BIN)/python bench/campaign.py

bench-training: setup
	$(BIN)/python bench/training.py

clean:
	rm -rf .data $(DAGSTER_HOME) samples/packshots samples/logos samples/campaign/template.mp4 samples/campaign/logos samples/training/images
