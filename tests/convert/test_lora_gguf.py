"""write_lora_gguf: the keys, names, shapes and types llama.cpp reads (checked with gguf-py's
own reader), an existing output never replaced, and bad pairs refused with no file left."""

from __future__ import annotations

import stat
from pathlib import Path

import gguf
import numpy as np
import pytest

from llamacode.convert.errors import ConvertError, OutputExistsError, TensorShapeError
from llamacode.convert.lora_gguf import write_lora_gguf

RANK = 4
PAIRS = {
    "blk.0.attn_q.weight": (np.full((RANK, 64), 0.5, np.float32), np.ones((64, RANK), np.float32)),
    "blk.0.ffn_up.weight": (np.ones((RANK, 64), np.float32), np.full((128, RANK), 2.0, np.float32)),
}


def _field(reader: gguf.GGUFReader, key: str):
    return reader.fields[key].contents()


@pytest.mark.parametrize(
    ("dtype", "qtype"),
    [("f32", gguf.GGMLQuantizationType.F32), ("f16", gguf.GGMLQuantizationType.F16)],
)
def test_adapter_has_the_keys_names_and_shapes_llama_cpp_reads(tmp_path: Path, dtype, qtype):
    path = tmp_path / "adapter.gguf"
    size = write_lora_gguf(
        path,
        architecture="qwen2",
        alpha=16.0,
        pairs=PAIRS,
        base_model="Qwen2.5 Coder 0.5B Instruct",
        name="my adapter",
        dtype=dtype,
    )
    assert size == path.stat().st_size
    reader = gguf.GGUFReader(path)
    assert _field(reader, gguf.Keys.General.TYPE) == gguf.GGUFType.ADAPTER
    assert _field(reader, gguf.Keys.General.ARCHITECTURE) == "qwen2"
    assert _field(reader, gguf.Keys.Adapter.TYPE) == "lora"
    assert _field(reader, gguf.Keys.Adapter.LORA_ALPHA) == 16.0
    assert _field(reader, gguf.Keys.General.NAME) == "my adapter"
    assert _field(reader, gguf.Keys.General.BASE_MODEL_COUNT) == 1
    assert (
        _field(reader, gguf.Keys.General.BASE_MODEL_NAME.format(id=0))
        == "Qwen2.5 Coder 0.5B Instruct"
    )
    tensors = {t.name: t for t in reader.tensors}
    # ggml order: A is [in, rank], B is [rank, out], as llama-adapter.cpp checks.
    assert {name: list(t.shape) for name, t in tensors.items()} == {
        "blk.0.attn_q.weight.lora_a": [64, RANK],
        "blk.0.attn_q.weight.lora_b": [RANK, 64],
        "blk.0.ffn_up.weight.lora_a": [64, RANK],
        "blk.0.ffn_up.weight.lora_b": [RANK, 128],
    }
    assert {t.tensor_type for t in tensors.values()} == {qtype}
    up_b = tensors["blk.0.ffn_up.weight.lora_b"].data
    assert np.array_equal(
        np.asarray(up_b, np.float32).reshape(128, RANK), PAIRS["blk.0.ffn_up.weight"][1]
    )


@pytest.mark.parametrize("read_only", [False, True])
def test_an_existing_output_is_never_replaced(tmp_path: Path, read_only: bool):
    path = tmp_path / "adapter.gguf"
    path.write_bytes(b"not a gguf at all")
    if read_only:
        path.chmod(stat.S_IRUSR)
    with pytest.raises(OutputExistsError, match="already exists; choose a new path"):
        write_lora_gguf(path, architecture="llama", alpha=8.0, pairs=PAIRS)
    assert path.read_bytes() == b"not a gguf at all"
    assert [p.name for p in tmp_path.iterdir()] == ["adapter.gguf"]


BAD = {
    "ranks differ": ({"blk.0.attn_q.weight": (np.ones((4, 64)), np.ones((64, 3)))}, "same rank"),
    "not matrices": ({"blk.0.attn_q.weight": (np.ones(4), np.ones((64, 4)))}, "same rank"),
    "embeddings": ({"token_embd.weight": PAIRS["blk.0.attn_q.weight"]}, "embedding adapters"),
    "not a weight name": ({"blk.0.attn_q": PAIRS["blk.0.attn_q.weight"]}, "GGUF name"),
    "not finite": (
        {"blk.0.attn_q.weight": (np.full((4, 64), np.inf), np.ones((64, 4)))},
        "not finite",
    ),
    "nothing": ({}, "no LoRA pairs"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_pairs_are_refused_and_no_file_is_left(tmp_path: Path, case: str):
    pairs, message = BAD[case]
    with pytest.raises(ConvertError, match=message) as raised:
        write_lora_gguf(tmp_path / "adapter.gguf", architecture="llama", alpha=8.0, pairs=pairs)
    if case in ("ranks differ", "not matrices", "embeddings"):
        assert isinstance(raised.value, TensorShapeError)
    assert list(tmp_path.iterdir()) == []


def test_f16_refuses_values_it_cannot_hold(tmp_path: Path):
    big = {"blk.0.attn_q.weight": (np.full((4, 64), 1e6, np.float32), np.ones((64, 4)))}
    with pytest.raises(ConvertError, match="not finite as float16"):
        write_lora_gguf(
            tmp_path / "a.gguf", architecture="llama", alpha=8.0, pairs=big, dtype="f16"
        )
    write_lora_gguf(tmp_path / "a.gguf", architecture="llama", alpha=8.0, pairs=big)
