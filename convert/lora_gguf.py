"""LoRA matrices -> a GGUF LoRA adapter that llama.cpp applies on top of a model.

The pairs come in PEFT's orientation, A [rank, in] and B [out, rank], for a model tensor
``W`` [out, in] (numpy order; the tensor as the GGUF stores it, so a llama GGUF's
permuted ``attn_q``/``attn_k`` rows are B's rows too). Stored as numpy arrays of those
shapes, they have exactly the ggml shapes llama.cpp expects (runtime/adapter.py), and
llama.cpp computes ``W x + (alpha / rank) * B (A x)`` as PEFT does.

The adapter records the architecture and, when given, the name of the model it was made
for (``general.base_model.0.name``), so the runtime can tell a user an adapter does not
belong to the model they load.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from gguf import GGMLQuantizationType, GGUFType, Keys, LlamaFileType

from llamacode.convert.errors import ConvertError, OutputExistsError, TensorShapeError
from llamacode.convert.gguf_kv import KV, kv_float32, kv_string, kv_uint32
from llamacode.convert.gguf_write import PlannedTensor, write_gguf
from llamacode.runtime.adapter import LORA_A_SUFFIX, LORA_ADAPTER_TYPE, LORA_B_SUFFIX, TOKEN_EMBD

LoraDtype = Literal["f32", "f16"]
_TYPES: dict[str, tuple[type[np.floating], GGMLQuantizationType, LlamaFileType]] = {
    "f32": (np.float32, GGMLQuantizationType.F32, LlamaFileType.ALL_F32),
    "f16": (np.float16, GGMLQuantizationType.F16, LlamaFileType.MOSTLY_F16),
}


def write_lora_gguf(
    path: str | Path,
    *,
    architecture: str,
    alpha: float,
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    base_model: str | None = None,
    name: str | None = None,
    dtype: LoraDtype = "f32",
) -> int:
    """Write the adapter to ``path``; returns its size in bytes.

    ``architecture`` is the base model's ``general.architecture`` (llama.cpp refuses an
    adapter for another); ``pairs`` maps a model tensor's GGUF name (``blk.3.attn_q.weight``)
    to its (A, B). An existing ``path`` is never replaced, and the file appears whole or
    not at all.
    """
    path = Path(path)
    if path.exists() or path.is_symlink():
        raise OutputExistsError(f"{path} already exists; choose a new path for the adapter")
    if dtype not in _TYPES:
        raise ConvertError(f"a LoRA adapter is written as f32 or f16, not {dtype!r}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise ConvertError(f"LoRA alpha must be a positive number, not {alpha}")
    if not pairs:
        raise ConvertError("no LoRA pairs to write: the adapter would change nothing")
    np_type, qtype, file_type = _TYPES[dtype]
    tensors = []
    for base, (a, b) in sorted(pairs.items()):
        a, b = _checked_pair(base, a, b, np_type)
        for suffix, values in ((LORA_A_SUFFIX, a), (LORA_B_SUFFIX, b)):
            tensors.append(
                PlannedTensor(base + suffix, values.shape, qtype, partial(_same, values))
            )
    kvs: dict[str, KV] = {
        Keys.General.TYPE: kv_string(GGUFType.ADAPTER),
        Keys.Adapter.TYPE: kv_string(LORA_ADAPTER_TYPE),
        Keys.Adapter.LORA_ALPHA: kv_float32(alpha),
        Keys.General.FILE_TYPE: kv_uint32(file_type),
    }
    if name:
        kvs[Keys.General.NAME] = kv_string(name)
    if base_model:
        kvs[Keys.General.BASE_MODEL_COUNT] = kv_uint32(1)
        kvs[Keys.General.BASE_MODEL_NAME.format(id=0)] = kv_string(base_model)
    return write_gguf(
        path, kvs, tensors, arch=architecture, progress=False, desc="write LoRA adapter"
    )


def _checked_pair(
    base: str, a: np.ndarray, b: np.ndarray, np_type: type[np.floating]
) -> tuple[np.ndarray, np.ndarray]:
    """A [rank, in] and B [out, rank] as contiguous arrays of the output type."""
    if base == TOKEN_EMBD:
        raise TensorShapeError(
            f"{base}: embedding adapters are not written (llama.cpp stores them flipped and "
            "cannot apply them to models whose output shares the embeddings)"
        )
    if not base.endswith(".weight"):
        raise TensorShapeError(f"{base!r} is not a model weight's GGUF name (blk.N.attn_q.weight)")
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1] or a.shape[0] == 0:
        raise TensorShapeError(
            f"{base}: A must be [rank, in] and B [out, rank] with the same rank; got A "
            f"{list(a.shape)} and B {list(b.shape)}"
        )
    out = []
    for label, values in (("A", a), ("B", b)):
        with np.errstate(over="ignore"):  # too large for the type: refused just below
            stored = np.ascontiguousarray(values, dtype=np_type)
        if not np.isfinite(stored).all():
            raise ConvertError(
                f"{base}: {label} holds values that are not finite as {np.dtype(np_type).name}"
            )
        out.append(stored)
    return out[0], out[1]


def _same(values: np.ndarray) -> np.ndarray:
    return values
