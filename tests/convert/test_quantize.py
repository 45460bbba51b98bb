"""`quantize`: numpy types agree with llama.cpp's own quantizer; k-quants go through llama.cpp."""

from __future__ import annotations

import numpy as np
import pytest

from llamacode.convert.errors import UnsupportedTypeError
from llamacode.convert.export_gguf import export_gguf
from llamacode.convert.quantize import quantize_gguf
from tests.convert.convert_helpers import (
    gguf_tensors,
    llama_logits,
    make_model,
    torch_logits,
    write_checkpoint,
)


def test_numpy_q8_0_is_bit_identical_to_llama_cpp_q8_0(exported, tmp_path):
    ours = quantize_gguf(
        exported("f32"), tmp_path / "np.gguf", "q8_0", engine="numpy", progress=False
    )
    theirs = quantize_gguf(exported("f32"), tmp_path / "cpp.gguf", "Q8_0", engine="llama.cpp")
    assert ours.tensor_types == theirs.tensor_types == {"Q8_0": 16, "F32": 5}
    assert gguf_tensors(tmp_path / "np.gguf") == gguf_tensors(tmp_path / "cpp.gguf")
    assert ours.output_bytes < ours.input_bytes


def test_quantize_f16_equals_direct_export(exported, tmp_path):
    quantize_gguf(exported("f32"), tmp_path / "q.gguf", "f16", progress=False)
    assert gguf_tensors(tmp_path / "q.gguf") == gguf_tensors(exported("f16"))


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory, sp_model):
    """dim 256 and hidden 512: every row is a whole number of k-quant super-blocks."""
    model = make_model(seed=3, dim=256, hidden_dim=512)
    for p in model.parameters():  # smaller weights: a 256-wide random net at std 0.2 is chaotic
        if p.ndim == 2:
            p.data.mul_(0.25)
    directory = tmp_path_factory.mktemp("wide")
    ckpt = write_checkpoint(directory / "wide", model, sp_model, None)
    gguf = directory / "wide.f16.gguf"
    export_gguf(ckpt, gguf, "f16", progress=False)
    return model, gguf


def test_q4_k_m_through_llama_cpp(wide_model, tmp_path, tokens):
    model, f16 = wide_model
    report = quantize_gguf(f16, tmp_path / "q4km.gguf", "Q4_K_M")
    assert report.engine == "llama.cpp"
    assert report.tensor_types.keys() == {"Q4_K", "Q6_K", "F32"}
    assert report.output_bytes < 0.45 * report.input_bytes
    ref = torch_logits(model, tokens)
    got = llama_logits(tmp_path / "q4km.gguf", tokens)
    diff = float(np.abs(got - ref).max())
    print(f"Q4_K_M: max |llama.cpp - torch| = {diff:.3g} (logits up to {np.abs(ref).max():.3g})")
    assert np.corrcoef(got.ravel(), ref.ravel())[0, 1] > 0.95


def test_k_quant_falls_back_when_rows_are_not_256_wide(exported, tmp_path):
    """dim 64: llama.cpp cannot use q4_K / q6_K and picks q5_0 / q8_0 instead."""
    report = quantize_gguf(exported("f16"), tmp_path / "fallback.gguf", "Q4_K_M")
    assert not any(t.endswith("_K") for t in report.tensor_types)
    assert report.tensor_types == {"Q5_0": 13, "Q8_0": 3, "F32": 5}
    assert np.isfinite(llama_logits(tmp_path / "fallback.gguf", [1, 10, 20])).all()


def test_unknown_type_is_refused(exported, tmp_path):
    with pytest.raises(UnsupportedTypeError, match="Q3_X"):
        quantize_gguf(exported("f16"), tmp_path / "x.gguf", "Q3_X")
    with pytest.raises(UnsupportedTypeError):
        quantize_gguf(exported("f16"), tmp_path / "x.gguf", "Q4_K_M", engine="numpy")
    assert list(tmp_path.iterdir()) == []
