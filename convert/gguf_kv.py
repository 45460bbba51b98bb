"""GGUF metadata as plain values and tensors as bytes, read through runtime's checked reader.

Copying a published file's keys (tokenizer, chat template, FIM ids) must not alter their
types or bytes, so values keep their GGUF type and strings stay raw bytes when copied.
Every GGUF convert reads is untrusted, so it goes through :mod:`runtime.gguf_file`, which
checks each count, length and offset against the file before using it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import quant_shape_to_byte_shape

from llamacode.convert.errors import InvalidGGUFError
from llamacode.runtime.errors import InvalidModelError
from llamacode.runtime.gguf_file import GGUFHeader, read_header, read_tensor_data
from llamacode.runtime.gguf_keys import GGUF_MAGIC, Keys


@dataclass(frozen=True)
class KV:
    """One metadata value with its GGUF type (``sub_type`` for arrays)."""

    value: Any
    type: GGUFValueType
    sub_type: GGUFValueType | None = None


def kv_uint32(value: int) -> KV:
    return KV(int(value), GGUFValueType.UINT32)


def kv_float32(value: float) -> KV:
    return KV(float(value), GGUFValueType.FLOAT32)


def kv_string(value: str | bytes) -> KV:
    return KV(value, GGUFValueType.STRING)


def kv_bool(value: bool) -> KV:
    return KV(bool(value), GGUFValueType.BOOL)


def kv_array(values: list[Any], sub_type: GGUFValueType) -> KV:
    return KV(values, GGUFValueType.ARRAY, sub_type)


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor of an opened GGUF: its name, type, ggml shape and where its bytes are."""

    name: str
    tensor_type: GGMLQuantizationType
    shape: tuple[int, ...]  # ggml order (row length first), as the file stores it
    n_bytes: int
    data_offset: int  # from the start of the file


@dataclass(frozen=True)
class GGUFFile:
    """A GGUF whose header has been read and checked; tensor data is read on demand."""

    header: GGUFHeader
    tensors: list[GGUFTensor]

    @property
    def path(self) -> Path:
        return self.header.path


def open_gguf(path: str | os.PathLike[str]) -> GGUFFile:
    """Read and check a GGUF's header; a damaged file becomes :class:`InvalidGGUFError`."""
    try:
        header = read_header(path, raw_strings=True)
    except InvalidModelError as exc:
        raise InvalidGGUFError(str(exc)) from exc
    tensors = [
        GGUFTensor(
            t.name,
            GGMLQuantizationType(t.ggml_type),
            t.shape,
            t.n_bytes,
            header.data_offset + t.offset,
        )
        for t in header.tensors
    ]
    return GGUFFile(header, tensors)


def is_gguf(path: str | os.PathLike[str]) -> bool:
    """True when the file starts with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            return f.read(len(GGUF_MAGIC)) == GGUF_MAGIC
    except OSError:
        return False


def read_kv(gguf_file: GGUFFile) -> dict[str, KV]:
    """All metadata of a file, in file order, with the types it is stored with."""
    out: dict[str, KV] = {}
    header = gguf_file.header
    for name, value in header.metadata.items():
        main, sub = header.types[name]
        if main == GGUFValueType.ARRAY:
            if sub == GGUFValueType.ARRAY:
                raise InvalidGGUFError(
                    f"{gguf_file.path}: nested metadata array {name!r} is not supported"
                )
            out[name] = KV(list(value), GGUFValueType(main), GGUFValueType(sub))
        else:
            out[name] = KV(value, GGUFValueType(main))
    return out


def as_text(kv: KV | None) -> str | None:
    if kv is None:
        return None
    return kv.value.decode("utf-8") if isinstance(kv.value, bytes) else str(kv.value)


def as_int(kv: KV | None) -> int | None:
    return None if kv is None else int(kv.value)


def token_texts(kvs: Mapping[str, KV]) -> list[str]:
    """The vocabulary as text (invalid UTF-8 replaced; only used for lookups)."""
    tokens = kvs.get(Keys.Tokenizer.LIST)
    if tokens is None:
        return []
    return [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in tokens.value]


def add_kvs(writer: GGUFWriter, kvs: Mapping[str, KV]) -> None:
    for key, kv in kvs.items():
        if key == Keys.General.ARCHITECTURE:
            continue  # GGUFWriter writes it from its arch argument
        if kv.type == GGUFValueType.ARRAY and not kv.value:
            continue  # GGUF has no empty arrays
        writer.add_key_value(key, kv.value, kv.type, kv.sub_type)


def tensor_nbytes(shape: tuple[int, ...], qtype: GGMLQuantizationType) -> int:
    """Bytes of a tensor of numpy ``shape`` (rows last) stored as ``qtype``."""
    block, type_size = GGML_QUANT_SIZES[qtype]
    return math.prod(shape[:-1]) * (shape[-1] // block) * type_size


def add_planned_tensor(
    writer: GGUFWriter, name: str, shape: tuple[int, ...], qtype: GGMLQuantizationType
) -> None:
    """Declare a tensor before any data is written (the header comes first in a GGUF)."""
    nbytes = tensor_nbytes(shape, qtype)
    if qtype == GGMLQuantizationType.F32:
        writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes)
    elif qtype == GGMLQuantizationType.F16:
        writer.add_tensor_info(name, shape, np.dtype(np.float16), nbytes)
    else:
        writer.add_tensor_info(name, shape, np.dtype(np.float32), nbytes, raw_dtype=qtype)


def numpy_shape(tensor: GGUFTensor) -> tuple[int, ...]:
    """A tensor's logical shape in numpy order (ggml stores ne reversed)."""
    return tuple(reversed(tensor.shape))


def read_tensor_bytes(path: str | os.PathLike[str], tensor: GGUFTensor) -> np.ndarray:
    """One tensor of the GGUF at ``path`` as its stored bytes, shaped (..., bytes per row)."""
    try:
        data = read_tensor_data(path, tensor.data_offset, tensor.n_bytes)
    except InvalidModelError as exc:
        raise InvalidGGUFError(f"{exc} (tensor {tensor.name!r})") from exc
    array = np.frombuffer(data, dtype=np.uint8)
    return array.reshape(quant_shape_to_byte_shape(numpy_shape(tensor), tensor.tensor_type))
