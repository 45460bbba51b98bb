"""A qwen2 GGUF loaded into the PyTorch model computes the logits llama.cpp computes.

Measured (`.venv/bin/python -m pytest -s tests/training/test_qwen2_pretrained.py -m ""`),
max |llama.cpp - PyTorch| over all logits, PyTorch on the file's dequantized weights:

- tiny qwen2 (2 layers, GQA 4/2 heads, non-zero q/k/v biases), F32: 0.8e-5 to 1.1e-5 on
  logits up to 7.3 (seeds 0-3), every top-1 equal;
- the same in Q8_0: 0.24 to 0.34 (llama.cpp quantizes activations to 8 bits for Q8_0
  matmuls), top-1 equal at 95 to 100 % of positions;
- Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 320 tokens of stdlib code (four files): 0.76 to 1.05
  on logits up to 36, mean 0.053 to 0.062; top-1 equal at 98.1 to 99.1 % of positions,
  every disagreement where PyTorch's two best logits are within 0.19 of each other.
  Exported back to F32 by `llamacode convert`, the same weights give 5.3e-5 (top-1 100 %):
  the Q4_K_M differences are llama.cpp's quantized activations, not the model.

Token ids go to both engines as they are (``Llama.eval``: no BOS is added; Qwen2.5 adds
none either).
"""

from __future__ import annotations

import dataclasses
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType

from llamacode.convert.checkpoint_format import ROPE_INTERLEAVED, ROPE_ROTATE_HALF
from llamacode.convert.import_gguf import read_gguf_weights
from llamacode.training.model import Transformer
from llamacode.training.pretrained import load_pretrained
from tests.fixtures.qwen2_gguf import installed_qwen_05b, llama_cpp_logits, write_tiny_qwen2_gguf

CODE = Path(sysconfig.get_paths()["stdlib"]) / "json" / "decoder.py"


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_f32(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_qwen2_gguf(tmp_path_factory.mktemp("qwen2") / "tiny-f32.gguf")


def _tokens(model: Transformer, n: int = 64, seed: int = 0) -> list[int]:
    return np.random.RandomState(seed).randint(0, model.config.vocab_size, size=n).tolist()


def _logits(model: Transformer, tokens: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([tokens]))[0].numpy()


def _compare(path: Path, model: Transformer, tokens: list[int]) -> tuple[float, float]:
    ours, theirs = _logits(model, tokens), llama_cpp_logits(path, tokens)
    diff = float(np.abs(ours - theirs).max())
    top1 = float((ours.argmax(-1) == theirs.argmax(-1)).mean())
    print(f"{path.name}: max |llama.cpp - torch| = {diff:.3g}, top-1 agreement {top1:.3f}")
    return diff, top1


def test_load_pretrained_holds_the_files_dequantized_weights(tiny_f32):
    model = load_pretrained(tiny_f32, max_seq_len=128)
    config, weights = read_gguf_weights(tiny_f32)
    assert model.config == dataclasses.replace(config, max_seq_len=128)
    assert model.config.qkv_bias and model.config.rope_layout == ROPE_ROTATE_HALF
    state = model.state_dict()
    assert state.keys() == weights.keys()
    for name, array in weights.items():
        assert np.array_equal(state[name].numpy(), array), name
    assert all(p.requires_grad and p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="exceeds max_seq_len 128"):
        model(torch.zeros(1, 129, dtype=torch.long))


def test_loaded_model_trains_its_biases(tiny_f32):
    model = load_pretrained(tiny_f32).train()
    tokens = torch.tensor([_tokens(model, 33)])
    logits = model(tokens[:, :-1])
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[0, 1:]).backward()
    grad = model.layers[0].attention.wq.bias.grad
    assert grad is not None and grad.abs().max() > 0


def test_tiny_qwen2_f32_logits_equal_llama_cpp(tiny_f32):
    model = load_pretrained(tiny_f32)
    tokens = _tokens(model)
    diff, top1 = _compare(tiny_f32, model, tokens)
    assert diff < 1e-4 and top1 == 1.0
    # The same weights with Llama's interleaved RoPE are far off: the layout is what matches.
    wrong = Transformer(dataclasses.replace(model.config, rope_layout=ROPE_INTERLEAVED))
    wrong.load_state_dict(model.state_dict())
    assert np.abs(_logits(wrong.eval(), tokens) - llama_cpp_logits(tiny_f32, tokens)).max() > 1


def test_tied_tiny_qwen2_logits_equal_llama_cpp(tmp_path):
    path = write_tiny_qwen2_gguf(tmp_path / "tied.gguf", tie_embeddings=True, seed=1)
    model = load_pretrained(path)
    assert model.config.tie_embeddings and model.output is None
    diff, _ = _compare(path, model, _tokens(model, seed=1))
    assert diff < 1e-4


def test_tiny_qwen2_q8_0_logits_within_measured_bound(tmp_path):
    path = write_tiny_qwen2_gguf(tmp_path / "q8_0.gguf", qtype=GGMLQuantizationType.Q8_0)
    model = load_pretrained(path)
    diff, top1 = _compare(path, model, _tokens(model))
    assert diff < 0.5 and top1 >= 0.9


@pytest.fixture(scope="module")
def qwen_05b() -> Path:
    return installed_qwen_05b()


@pytest.mark.slow
def test_qwen25_coder_05b_logits_match_llama_cpp(qwen_05b):
    from llama_cpp import Llama

    vocab_only = Llama(model_path=str(qwen_05b), vocab_only=True, verbose=False)
    try:
        text = CODE.read_text(encoding="utf-8").encode()
        tokens = vocab_only.tokenize(text, add_bos=False, special=False)[:320]
    finally:
        vocab_only.close()
    model = load_pretrained(qwen_05b, max_seq_len=len(tokens))
    c = model.config
    assert (c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.vocab_size) == (24, 896, 14, 2, 151936)
    assert c.qkv_bias and c.rope_layout == ROPE_ROTATE_HALF
    ours = _logits(model, tokens)
    del model
    theirs = llama_cpp_logits(qwen_05b, tokens)
    diff = np.abs(ours - theirs)
    agree = ours.argmax(-1) == theirs.argmax(-1)
    top2 = np.sort(ours, axis=-1)[:, -2:]
    confident = top2[:, 1] - top2[:, 0] > 0.5
    print(
        f"Qwen2.5-Coder-0.5B Q4_K_M, {len(tokens)} tokens: max |diff| {diff.max():.3g}, "
        f"mean {diff.mean():.3g}, logits up to {np.abs(ours).max():.3g}, top-1 {agree.mean():.3f}"
    )
    assert diff.max() < 1.5 and diff.mean() < 0.1
    assert agree.mean() >= 0.97 and agree[confident].all()
