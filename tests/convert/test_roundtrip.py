"""GGUF -> checkpoint -> GGUF keeps every tensor bit for bit, and training can load it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gguf import GGUFReader

from convert.export_gguf import export_gguf
from convert.import_gguf import import_gguf
from convert.llama_layout import LlamaHParams
from tests.convert.convert_helpers import gguf_tensors, torch_logits


@pytest.mark.parametrize("out_type", ["f32", "f16"])
def test_gguf_checkpoint_gguf_is_bit_exact(exported, tmp_path, out_type):
    original = exported(out_type)
    ckpt = tmp_path / "imported"
    import_gguf(original, ckpt, progress=False)
    again = tmp_path / "again.gguf"
    export_gguf(ckpt, again, out_type, progress=False)
    before, after = gguf_tensors(original), gguf_tensors(again)
    assert before.keys() == after.keys()
    for name in before:
        assert before[name] == after[name], name
    tok_before = {
        k: v.contents()
        for k, v in GGUFReader(original).fields.items()
        if k.startswith("tokenizer.")
    }
    tok_after = {
        k: v.contents() for k, v in GGUFReader(again).fields.items() if k.startswith("tokenizer.")
    }
    assert tok_before == tok_after


def test_imported_checkpoint_loads_in_training_model(exported, tmp_path, tiny_model, tokens):
    from safetensors.torch import load_file

    from training.model import ModelConfig, Transformer

    ckpt = tmp_path / "imported"
    report = import_gguf(exported("f32"), ckpt, progress=False)
    config = json.loads((ckpt / "config.json").read_text())
    assert config["format"] == "llamacode-checkpoint" and config["format_version"] == 1
    assert config["tokenizer"] == {
        "type": "gguf", "file": "tokenizer.gguf", "fim": {"pre": 3, "suf": 4, "mid": 5, "eot": 6}
    }  # fmt: skip
    assert config["chat_template"].startswith("{% for m in messages %}")
    assert report.hparams.rope_theta == 500000.0
    model = Transformer(ModelConfig.from_dict(config["model"]))
    model.load_state_dict(load_file(ckpt / "model.safetensors"), strict=True)
    model.eval()
    assert np.array_equal(torch_logits(model, tokens), torch_logits(tiny_model, tokens))


def test_convert_hparams_mirror_training_model_config():
    from dataclasses import fields

    from training.model import ModelConfig

    assert [f.name for f in fields(ModelConfig)] == LlamaHParams.field_names()
    assert ModelConfig().to_dict().keys() == LlamaHParams(1, 1, 1, 1, 1, 1).to_dict().keys()


def test_quantized_gguf_imports_dequantized(exported, checkpoint, tmp_path):
    from safetensors.numpy import load_file

    ckpt = tmp_path / "from-q8"
    import_gguf(exported("q8_0"), ckpt, progress=False)
    weights = load_file(ckpt / "model.safetensors")
    original = load_file(checkpoint / "model.safetensors")
    assert weights.keys() == original.keys()
    wq = "layers.0.attention.wq.weight"
    assert weights[wq].dtype == np.float32
    # q8_0 error is at most half a step of each 32-value block's scale (max|w| / 127).
    err = np.abs(weights[wq] - original[wq]).max()
    assert 0 < err < np.abs(original[wq]).max() / 127
