"""The validated safetensors reader: bf16 without a numpy bf16 type, and a streaming writer."""

from __future__ import annotations

import numpy as np

from llamacode.convert.safetensors_io import SafetensorsFile, f32_to_bf16, write_safetensors


def test_bf16_tensors_read_exactly_as_torch_widens_them(tmp_path):
    import torch
    from safetensors.torch import save_file

    values = torch.randn(33, 17).to(torch.bfloat16)
    save_file({"w": values, "h": values.half()}, tmp_path / "w.safetensors")
    st = SafetensorsFile(tmp_path / "w.safetensors")
    assert np.array_equal(st.read_f32("w"), values.float().numpy())
    assert np.array_equal(st.read_f32("h"), values.half().float().numpy())


def test_f32_to_bf16_rounds_like_torch():
    import torch

    values = torch.randn(1000) * 1000
    ours = f32_to_bf16(values.numpy())
    assert np.array_equal(ours, values.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16))


def test_streaming_writer_output_loads_in_safetensors(tmp_path):
    from safetensors.numpy import load_file

    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(5, np.float32)}
    write_safetensors(
        tmp_path / "x.safetensors", [(k, v.shape) for k, v in arrays.items()], arrays.__getitem__
    )
    loaded = load_file(tmp_path / "x.safetensors")
    assert loaded.keys() == arrays.keys()
    assert all(np.array_equal(loaded[k], arrays[k]) for k in arrays)
