"""GGUF -> checkpoint -> GGUF keeps every tensor bit for bit, and training can load it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gguf import GGUFReader

from llamacode.convert.checkpoint_format import CONFIG_FILE, MODEL_FILE, ModelConfig, read_config
from llamacode.convert.errors import UnknownSourceError
from llamacode.convert.export_gguf import export_gguf
from llamacode.convert.import_gguf import import_gguf
from llamacode.runtime.gguf_keys import TOKENIZER_PREFIX
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
        if k.startswith(TOKENIZER_PREFIX)
    }
    tok_after = {
        k: v.contents()
        for k, v in GGUFReader(again).fields.items()
        if k.startswith(TOKENIZER_PREFIX)
    }
    assert tok_before == tok_after


def test_imported_checkpoint_loads_in_training_model(exported, tmp_path, tiny_model, tokens):
    from safetensors.torch import load_file

    from llamacode.training.model import Transformer

    ckpt = tmp_path / "imported"
    report = import_gguf(exported("f32"), ckpt, progress=False)
    config = read_config(ckpt)
    assert config.tokenizer.type == "gguf" and (ckpt / config.tokenizer.file).is_file()
    assert config.tokenizer.fim == {"pre": 3, "suf": 4, "mid": 5, "eot": 6}
    assert config.chat_template.startswith("{% for m in messages %}")
    assert report.hparams == config.model and config.model.rope_theta == 500000.0
    model = Transformer(config.model)
    model.load_state_dict(load_file(ckpt / MODEL_FILE), strict=True)
    model.eval()
    assert np.array_equal(torch_logits(model, tokens), torch_logits(tiny_model, tokens))


def test_checkpoint_with_incomplete_hyper_parameters_is_refused(checkpoint, tmp_path):
    # The training defaults describe a tiny model; a checkpoint must state every value.
    data = json.loads((checkpoint / CONFIG_FILE).read_text())
    del data["model"]["rope_theta"]
    broken = tmp_path / "ckpt"
    broken.mkdir()
    (broken / CONFIG_FILE).write_text(json.dumps(data))
    with pytest.raises(UnknownSourceError, match=r"missing \['rope_theta'\]"):
        read_config(broken)
    partial = {k: v for k, v in data["model"].items() if k != "rope_theta"}
    assert ModelConfig.from_dict(partial).rope_theta == ModelConfig().rope_theta


def test_quantized_gguf_imports_dequantized(exported, checkpoint, tmp_path):
    from safetensors.numpy import load_file

    ckpt = tmp_path / "from-q8"
    import_gguf(exported("q8_0"), ckpt, progress=False)
    weights = load_file(ckpt / MODEL_FILE)
    original = load_file(checkpoint / MODEL_FILE)
    assert weights.keys() == original.keys()
    wq = "layers.0.attention.wq.weight"
    assert weights[wq].dtype == np.float32
    # q8_0 error is at most half a step of each 32-value block's scale (max|w| / 127).
    err = np.abs(weights[wq] - original[wq]).max()
    assert 0 < err < np.abs(original[wq]).max() / 127
