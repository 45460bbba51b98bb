"""Checkpoint or Hugging Face directory -> GGUF, one tensor in memory at a time.

The GGUF header (metadata and every tensor's type, shape and offset) is planned from the
config and tensor headers alone, written first, then each tensor is read, converted and
appended. Peak memory is a small multiple of the largest tensor.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, LlamaFileType
from gguf.constants import GGML_QUANT_SIZES, GGML_QUANT_VERSION
from gguf.quants import quantize

from llamacode.convert.checkpoint_format import ModelConfig
from llamacode.convert.errors import UnsupportedTypeError
from llamacode.convert.gguf_kv import KV, kv_float32, kv_string, kv_uint32
from llamacode.convert.gguf_write import PlannedTensor, write_gguf
from llamacode.convert.llama_layout import gguf_arch, gguf_name, meta_shapes
from llamacode.convert.sources import SourceModel, load_source
from llamacode.runtime.gguf_keys import Keys

# Output types the numpy path writes, and the file type each declares.
OUTPUT_TYPES: dict[str, tuple[GGMLQuantizationType, LlamaFileType]] = {
    "f32": (GGMLQuantizationType.F32, LlamaFileType.ALL_F32),
    "f16": (GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
    "bf16": (GGMLQuantizationType.BF16, LlamaFileType.MOSTLY_BF16),
    "q8_0": (GGMLQuantizationType.Q8_0, LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (GGMLQuantizationType.Q4_0, LlamaFileType.MOSTLY_Q4_0),
}


@dataclass(frozen=True)
class ConvertReport:
    output: Path
    bytes_written: int
    seconds: float
    largest_tensor_bytes: int
    tensor_types: dict[str, int]


def parse_type(name: str) -> tuple[GGMLQuantizationType, LlamaFileType]:
    try:
        return OUTPUT_TYPES[name.lower()]
    except KeyError:
        raise UnsupportedTypeError(
            f"type {name!r} cannot be written directly; choose one of {', '.join(OUTPUT_TYPES)} "
            "(k-quants: convert to f16, then `llamacode quantize`)"
        ) from None


def tensor_type(
    name: str, shape: tuple[int, ...], target: GGMLQuantizationType, output_name: str
) -> GGMLQuantizationType:
    """Type of tensor ``name`` in a file of type ``target`` (``output_name``: the output projection).

    Norm vectors stay f32 (as llama.cpp's own converter does). Quantized types need rows
    that are whole blocks, otherwise f16. Under q4_0 the output projection keeps q8_0:
    it is the tensor most sensitive to quantization.
    """
    if len(shape) < 2 or target == GGMLQuantizationType.F32:
        return GGMLQuantizationType.F32
    if target in (GGMLQuantizationType.F16, GGMLQuantizationType.BF16):
        return target
    chosen = (
        GGMLQuantizationType.Q8_0
        if (target == GGMLQuantizationType.Q4_0 and name == output_name)
        else target
    )
    if shape[-1] % GGML_QUANT_SIZES[chosen][0]:
        return GGMLQuantizationType.F16
    return chosen


def encode(data: np.ndarray, qtype: GGMLQuantizationType) -> np.ndarray:
    """float32 -> the bytes (or f32/f16 array) GGUFWriter stores for ``qtype``."""
    if qtype == GGMLQuantizationType.F32:
        return np.ascontiguousarray(data, dtype=np.float32)
    if qtype == GGMLQuantizationType.F16:
        return np.ascontiguousarray(data, dtype=np.float16)
    return quantize(np.ascontiguousarray(data, dtype=np.float32), qtype)


def _encoded(model: SourceModel, meta: str, qtype: GGMLQuantizationType) -> np.ndarray:
    return encode(model.read(meta), qtype)


def model_kvs(hp: ModelConfig, arch: str, name: str, file_type: LlamaFileType) -> dict[str, KV]:
    """The ``{arch}.*`` and general.* metadata llama.cpp reads."""
    values = {
        Keys.LLM.CONTEXT_LENGTH: kv_uint32(hp.max_seq_len),
        Keys.LLM.EMBEDDING_LENGTH: kv_uint32(hp.dim),
        Keys.LLM.BLOCK_COUNT: kv_uint32(hp.n_layers),
        Keys.LLM.FEED_FORWARD_LENGTH: kv_uint32(hp.hidden_dim),
        Keys.Attention.HEAD_COUNT: kv_uint32(hp.n_heads),
        Keys.Attention.HEAD_COUNT_KV: kv_uint32(hp.n_kv_heads),
        Keys.Attention.LAYERNORM_RMS_EPS: kv_float32(hp.norm_eps),
        Keys.Rope.DIMENSION_COUNT: kv_uint32(hp.head_dim),
        Keys.Rope.FREQ_BASE: kv_float32(hp.rope_theta),
        Keys.LLM.VOCAB_SIZE: kv_uint32(hp.vocab_size),
    }
    return {
        Keys.General.TYPE: kv_string("model"),
        Keys.General.NAME: kv_string(name),
        **{key.format(arch=arch): kv for key, kv in values.items()},
        Keys.General.FILE_TYPE: kv_uint32(int(file_type)),
        Keys.General.QUANTIZATION_VERSION: kv_uint32(GGML_QUANT_VERSION),
    }


def export_gguf(
    source: str | Path | SourceModel,
    output: str | Path,
    out_type: str = "f16",
    name: str | None = None,
    bpe_pre: str | None = None,
    progress: bool = True,
) -> ConvertReport:
    """Write ``source`` as a GGUF at ``output`` (atomically: whole file or none).

    The architecture is the one whose RoPE the model uses (:func:`gguf_arch`): llama for
    interleaved, qwen2 for rotate_half; q/k/v biases are written when the model has them.
    """
    target, file_type = parse_type(out_type)
    model = source if isinstance(source, SourceModel) else load_source(source, bpe_pre=bpe_pre)
    hp = model.hparams
    output_name = "tok_embeddings.weight" if hp.tie_embeddings else "output.weight"
    plan = [
        (meta, shape, tensor_type(meta, shape, target, output_name))
        for meta, shape in meta_shapes(hp).items()
    ]
    arch = gguf_arch(hp)
    kvs = model_kvs(hp, arch, name or model.name, file_type)
    kvs.update(model.vocab.kvs)
    if model.chat_template:
        kvs[Keys.Tokenizer.CHAT_TEMPLATE] = kv_string(model.chat_template)
    start = time.perf_counter()
    tensors = [
        PlannedTensor(gguf_name(meta), shape, qtype, partial(_encoded, model, meta, qtype))
        for meta, shape, qtype in plan
    ]
    written = write_gguf(
        output, kvs, tensors, arch=arch, progress=progress, desc=f"convert {out_type}"
    )
    counts = dict(Counter(qtype.name for _, _, qtype in plan))
    largest = max(int(np.prod(shape)) * 4 for _, shape, _ in plan)
    return ConvertReport(Path(output), written, time.perf_counter() - start, largest, counts)
