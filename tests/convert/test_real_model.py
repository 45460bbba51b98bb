"""The shipped SmolLM2 GGUF (a real Llama: GQA, tied embeddings, GPT-2 BPE) through the chain.

GGUF (Q4_1) -> checkpoint -> PyTorch forward, compared with llama.cpp on the original
file and on the checkpoint exported back to f32.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from llamacode.convert.export_gguf import export_gguf
from llamacode.convert.import_gguf import import_gguf
from tests.convert.convert_helpers import llama_logits, open_llama, torch_logits


@pytest.mark.slow
def test_smollm2_imports_and_matches_llama_cpp(tmp_path, default_model):
    from safetensors.torch import load_file

    from llamacode.training.model import ModelConfig, Transformer

    src = default_model
    report = import_gguf(src, tmp_path / "ckpt", progress=False)
    assert report.hparams.tie_embeddings and report.hparams.n_kv_heads == 3
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    model = Transformer(ModelConfig.from_dict(config["model"]))
    model.load_state_dict(load_file(tmp_path / "ckpt" / "model.safetensors"), strict=True)
    model.eval()
    llm = open_llama(src)
    try:
        tokens = llm.tokenize(
            b"def fibonacci(n):\n    if n < 2:\n        return n\n", add_bos=False
        )
    finally:
        llm.close()
    ref = torch_logits(model, tokens)

    # Same dequantized weights; llama.cpp also quantizes activations for Q4_1 matmuls.
    original = llama_logits(src, tokens)
    assert (original.argmax(-1) == ref.argmax(-1)).all()
    assert np.corrcoef(original.ravel(), ref.ravel())[0, 1] > 0.999

    export_gguf(tmp_path / "ckpt", tmp_path / "f32.gguf", "f32", progress=False)
    diff = float(np.abs(llama_logits(tmp_path / "f32.gguf", tokens) - ref).max())
    print(
        f"SmolLM2 f32 re-export: max |llama.cpp - torch| = {diff:.3g} (logits up to {np.abs(ref).max():.3g})"
    )
    assert diff < 1e-3
