"""Qwen2 through the converter: config, tensor names, GGUF -> checkpoint -> GGUF, and a
trained rotate_half / biased checkpoint exported for llama.cpp."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import MODEL_ARCH, MODEL_ARCH_NAMES, GGMLQuantizationType, GGUFReader, Keys

from llamacode.convert.checkpoint_format import (
    CONFIG_FILE,
    LATER_MODEL_KEYS,
    ROPE_INTERLEAVED,
    ROPE_ROTATE_HALF,
    CheckpointConfig,
    ModelConfig,
    TokenizerRef,
    read_config,
    write_config,
)
from llamacode.convert.errors import UnknownSourceError, UnsupportedArchitectureError
from llamacode.convert.export_gguf import export_gguf
from llamacode.convert.import_gguf import import_gguf, read_gguf_weights
from llamacode.convert.llama_layout import gguf_name, hf_name, meta_from_gguf
from llamacode.runtime.gguf_keys import TOKENIZER_PREFIX
from tests.convert.convert_helpers import gguf_tensors, make_model, torch_logits, write_checkpoint
from tests.fixtures.qwen2_gguf import installed_qwen_05b, llama_cpp_logits, write_tiny_qwen2_gguf

LLAMA = MODEL_ARCH_NAMES[MODEL_ARCH.LLAMA]
QWEN2 = MODEL_ARCH_NAMES[MODEL_ARCH.QWEN2]
QWEN2_CONFIG = ModelConfig(qkv_bias=True, rope_layout=ROPE_ROTATE_HALF, tie_embeddings=True)


def llamacode(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llamacode.runtime", *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _fields(path: Path) -> dict[str, object]:
    return {k: v.contents() for k, v in GGUFReader(path).fields.items()}


def test_qwen2_hyper_parameters_round_trip_through_config_json(tmp_path):
    config = CheckpointConfig(QWEN2_CONFIG, TokenizerRef("gguf"))
    write_config(tmp_path, config)
    stored = json.loads((tmp_path / CONFIG_FILE).read_text())["model"]
    assert (stored["qkv_bias"], stored["rope_layout"]) == (True, ROPE_ROTATE_HALF)
    assert read_config(tmp_path).model == QWEN2_CONFIG


def test_config_json_from_before_qwen2_reads_as_llama(tmp_path):
    write_config(tmp_path, CheckpointConfig(ModelConfig(), TokenizerRef("gguf")))
    data = json.loads((tmp_path / CONFIG_FILE).read_text())
    for key in LATER_MODEL_KEYS:
        del data["model"][key]
    (tmp_path / CONFIG_FILE).write_text(json.dumps(data))
    model = read_config(tmp_path).model
    assert (model.qkv_bias, model.rope_layout) == (False, ROPE_INTERLEAVED)


def test_unknown_rope_layout_is_refused(tmp_path):
    with pytest.raises(ValueError, match="rope_layout 'neox' is not one of"):
        ModelConfig(rope_layout="neox")
    write_config(tmp_path, CheckpointConfig(ModelConfig(), TokenizerRef("gguf")))
    data = json.loads((tmp_path / CONFIG_FILE).read_text())
    data["model"]["rope_layout"] = "neox"
    (tmp_path / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(UnknownSourceError, match="bad model hyper-parameters: rope_layout"):
        read_config(tmp_path)


def test_bias_tensors_have_gguf_and_hugging_face_names():
    assert gguf_name("layers.3.attention.wq.weight") == "blk.3.attn_q.weight"
    assert gguf_name("layers.3.attention.wq.bias") == "blk.3.attn_q.bias"
    assert gguf_name("layers.0.attention.wv.bias") == "blk.0.attn_v.bias"
    assert hf_name("layers.2.attention.wk.bias") == "model.layers.2.self_attn.k_proj.bias"
    assert meta_from_gguf("blk.3.attn_k.bias") == "layers.3.attention.wk.bias"
    assert meta_from_gguf("blk.3.attn_k.weight") == "layers.3.attention.wk.weight"
    assert meta_from_gguf("blk.0.attn_output.bias") is None
    assert meta_from_gguf("output.bias") is None
    with pytest.raises(KeyError):
        gguf_name("layers.0.feed_forward.w1.bias")


@pytest.mark.parametrize("qtype", [GGMLQuantizationType.F32, GGMLQuantizationType.Q8_0])
def test_qwen2_gguf_to_checkpoint_and_back_is_bit_exact(tmp_path, qtype):
    original = write_tiny_qwen2_gguf(tmp_path / "tiny.gguf", qtype=qtype)
    ckpt = tmp_path / "ckpt"
    done = llamacode("convert", original, ckpt, "--no-progress")
    assert done.returncode == 0, done.stderr
    model = read_config(ckpt).model
    assert (model.qkv_bias, model.rope_layout, model.n_kv_heads) == (True, ROPE_ROTATE_HALF, 2)
    again = tmp_path / "again.gguf"
    done = llamacode("convert", ckpt, again, "--type", qtype.name.lower(), "--no-progress")
    assert done.returncode == 0, done.stderr
    before, after = gguf_tensors(original), gguf_tensors(again)
    assert before.keys() == after.keys()
    for name in before:
        assert before[name] == after[name], name
    fields = _fields(again)
    assert fields[Keys.General.ARCHITECTURE] == QWEN2
    assert fields[Keys.Rope.FREQ_BASE.format(arch=QWEN2)] == 1_000_000.0
    tokenizer = {k: v for k, v in _fields(original).items() if k.startswith(TOKENIZER_PREFIX)}
    # Every key is copied as it was; the FIM ids found in the vocabulary are added.
    assert tokenizer.items() <= fields.items()
    assert fields[Keys.Tokenizer.FIM_MID_ID] == 2


def test_read_gguf_weights_gives_float32_arrays_in_meta_names(tmp_path):
    path = write_tiny_qwen2_gguf(tmp_path / "tiny.gguf", qtype=GGMLQuantizationType.Q8_0)
    config, weights = read_gguf_weights(path)
    assert config.qkv_bias and config.rope_layout == ROPE_ROTATE_HALF
    assert weights["layers.1.attention.wk.bias"].shape == (config.n_kv_heads * config.head_dim,)
    assert weights["output.weight"].shape == (config.vocab_size, config.dim)
    assert {a.dtype for a in weights.values()} == {np.dtype(np.float32)}


def test_tensor_outside_the_architecture_is_refused(tmp_path):
    raw = bytearray(write_tiny_qwen2_gguf(tmp_path / "tiny.gguf").read_bytes())
    at = raw.index(b"blk.1.attn_q.bias")
    raw[at : at + 17] = b"blk.1.attn_q.bia2"  # same length: the file stays well formed
    src = tmp_path / "odd.gguf"
    src.write_bytes(bytes(raw))
    with pytest.raises(UnsupportedArchitectureError, match=r"'blk\.1\.attn_q\.bia2' is not part"):
        import_gguf(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("rope_layout", "qkv_bias", "arch"),
    [
        (ROPE_ROTATE_HALF, True, QWEN2),
        (ROPE_ROTATE_HALF, False, QWEN2),
        (ROPE_INTERLEAVED, True, LLAMA),
    ],
)
def test_trained_checkpoint_exports_to_the_architecture_of_its_rope(
    tmp_path, sp_model, tokens, rope_layout, qkv_bias, arch
):
    torch.set_num_threads(1)
    model = make_model(seed=2, qkv_bias=qkv_bias, rope_layout=rope_layout)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0.0, 0.5)
    ckpt = write_checkpoint(tmp_path / "ckpt", model, sp_model, None)
    out = tmp_path / "out.gguf"
    export_gguf(ckpt, out, "f32", progress=False)
    assert _fields(out)[Keys.General.ARCHITECTURE] == arch
    assert ("blk.0.attn_q.bias" in gguf_tensors(out)) is qkv_bias
    diff = float(np.abs(llama_cpp_logits(out, tokens) - torch_logits(model, tokens)).max())
    print(f"{arch} {rope_layout} bias={qkv_bias}: max |llama.cpp - torch| = {diff:.3g}")
    assert diff < 1e-3
    reimported, _ = read_gguf_weights(out)
    assert (reimported.rope_layout, reimported.qkv_bias) == (rope_layout, qkv_bias)


@pytest.mark.slow
def test_qwen25_coder_05b_exported_to_f32_computes_what_pytorch_computes(tmp_path):
    """GGUF Q4_K_M -> checkpoint -> F32 GGUF in llama.cpp against PyTorch on the imported
    weights, 64 tokens of code: measured max |diff| 1.0e-4 (5.3e-5 over 320 tokens of
    json/decoder.py, logits up to 36). The differences from the Q4_K_M file itself (up to 1.05) are therefore
    llama.cpp's quantized activations, not the conversion."""
    from llama_cpp import Llama

    from llamacode.training.pretrained import load_pretrained

    source = installed_qwen_05b()
    vocab_only = Llama(model_path=str(source), vocab_only=True, verbose=False)
    try:
        text = "def parse(text: str) -> dict[str, int]:\n    counts = {}\n" * 6
        tokens = vocab_only.tokenize(text.encode(), add_bos=False, special=False)[:64]
    finally:
        vocab_only.close()
    ckpt, f32 = tmp_path / "ckpt", tmp_path / "f32.gguf"
    try:  # about 5 GB on disk: gone when the test ends, not when pytest prunes its temp dirs
        import_gguf(source, ckpt, progress=False)
        export_gguf(ckpt, f32, "f32", progress=False)
        assert _fields(f32)[Keys.General.ARCHITECTURE] == QWEN2
        torch.set_num_threads(1)
        ours = torch_logits(load_pretrained(source, max_seq_len=len(tokens)), tokens)
        diff = float(np.abs(llama_cpp_logits(f32, tokens) - ours).max())
    finally:
        shutil.rmtree(ckpt, ignore_errors=True)
        f32.unlink(missing_ok=True)
    print(f"Qwen2.5-Coder-0.5B f32 re-export: max |llama.cpp - torch| = {diff:.3g}")
    assert diff < 5e-4
