# Our embedded fill-in-the-middle model, end to end from a clean checkout:
# corpus (permissive licenses, decontaminated) -> tokenizer -> token shards -> training ->
# GGUF export -> Q8_0 -> evaluation against the SmolLM2 default. About an hour on one CPU
# thread. Included from the main Makefile, which defines VENV, PY, PIP and install-dev.
#   make model            everything (an interrupted training run resumes from its checkpoint)
#   make model-eval       only the evaluation of the shipped file
# The GPU recipe is configs/fim-small-gpu.toml (commands in runtime/weights/MODEL_CARD.md).

FIM_CONFIG := configs/fim-small.toml
FIM_SHORT_CONFIG := configs/fim-small-short.toml
FIM_OUT := out/fim-small
FIM_NAME := llamacode-fim-small
FIM_GGUF := runtime/weights/$(FIM_NAME).Q8_0.gguf
FIM_F16 := $(FIM_OUT)/$(FIM_NAME).f16.gguf
FIM_VOCAB := 4096
FIM_TASKS := evals/fim_stdlib_python.jsonl.gz
FIM_SMOKE := evals/fim_smoke.jsonl
FIM_EVAL_DIR := $(FIM_OUT)/eval
# Extra tasks cut from standard-library files the corpus left out (code the model never saw).
FIM_HELDOUT := $(FIM_EVAL_DIR)/heldout_stdlib.jsonl.gz
SMOLLM2_GGUF = $(shell $(PY) -c 'from llamacode.runtime.models import catalog_path; print(catalog_path("smollm2-135m"))')

.PHONY: model model-corpus model-eval

$(FIM_OUT)/corpus/manifest.json: training/corpus.py $(wildcard evals/*.jsonl*) | install-dev
	$(PY) -m llamacode.training.corpus --out $(FIM_OUT)/corpus --eval evals

model-corpus: $(FIM_OUT)/corpus/manifest.json

$(FIM_OUT)/tokenizer.model: $(FIM_OUT)/corpus/manifest.json
	$(LLAMACODE) tokenizer train --input $(FIM_OUT)/corpus --vocab-size $(FIM_VOCAB) --out $@

$(FIM_OUT)/data/index.json: $(FIM_OUT)/tokenizer.model
	$(LLAMACODE) data prepare --input $(FIM_OUT)/corpus --tokenizer $< --out $(FIM_OUT)/data \
		--val-fraction 0.01 --force

# Checkpoints every 50 steps: rerunning after an interruption continues the same run.
$(FIM_OUT)/model/.done: $(FIM_OUT)/data/index.json $(FIM_CONFIG)
	if [ -f $(FIM_OUT)/model/trainer_state.json ]; then \
		$(LLAMACODE) train $(FIM_CONFIG) --resume --no-progress; \
	else \
		$(LLAMACODE) train $(FIM_CONFIG) --no-progress; \
	fi
	touch $@

# Second stage: the same corpus cut into pieces of at most 800 characters (short middles
# that end with EOT, as in an editor); its shards are prepared by `llamacode train`.
$(FIM_OUT)/corpus-short/manifest.json: training/corpus.py $(wildcard evals/*.jsonl*) | install-dev
	$(PY) -m llamacode.training.corpus --out $(FIM_OUT)/corpus-short --eval evals --chunk-chars 800

$(FIM_OUT)/model-short/.done: $(FIM_OUT)/model/.done $(FIM_OUT)/corpus-short/manifest.json $(FIM_SHORT_CONFIG)
	if [ -f $(FIM_OUT)/model-short/trainer_state.json ]; then \
		$(LLAMACODE) train $(FIM_SHORT_CONFIG) --resume --no-progress; \
	else \
		$(LLAMACODE) train $(FIM_SHORT_CONFIG) --no-progress; \
	fi
	touch $@

$(FIM_F16): $(FIM_OUT)/model-short/.done
	$(LLAMACODE) convert $(FIM_OUT)/model-short $@ --type f16 --name $(FIM_NAME) --no-progress

$(FIM_GGUF): $(FIM_F16)
	$(LLAMACODE) quantize $< $@ q8_0 --no-progress

$(FIM_HELDOUT): $(FIM_OUT)/corpus/manifest.json
	$(LLAMACODE) eval build-fim-tasks \
		$$($(PY) -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["stdlib_heldout"]))' $<) \
		-o $@ --seed 0 --per-file 1 --context-chars 1500 --max-tasks 160

# Single-line and random-span exact match, PSM and SPM, for ours and for SmolLM2
# (prefix-only: it has no FIM tokens) on the same tasks; and HumanEval-infilling-format
# problems run against their tests.
model-eval: $(FIM_HELDOUT) | install-dev
	for tasks in $(FIM_TASKS) $(FIM_HELDOUT); do \
		set -e; base=$$(basename $$tasks .jsonl.gz); \
		$(LLAMACODE) eval fim-match $$tasks --model $(FIM_GGUF) --modes psm,spm --threads 1 \
			--out $(FIM_EVAL_DIR) --name $(FIM_NAME)-$$base --no-progress; \
		$(LLAMACODE) eval fim-match $$tasks --model $(SMOLLM2_GGUF) --modes psm,spm --threads 1 \
			--out $(FIM_EVAL_DIR) --name smollm2-$$base --no-progress; \
	done
	$(LLAMACODE) eval fim $(FIM_SMOKE) --model $(FIM_GGUF) --threads 1 \
		--out $(FIM_EVAL_DIR) --name $(FIM_NAME)-fim_smoke --no-progress
	$(LLAMACODE) eval fim $(FIM_SMOKE) --model $(SMOLLM2_GGUF) --threads 1 \
		--out $(FIM_EVAL_DIR) --name smollm2-fim_smoke --no-progress

model: $(FIM_GGUF)
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) model-eval
