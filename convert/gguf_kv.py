"""GGUF metadata as plain values: read from a GGUFReader, keep types, write back unchanged.

Copying a published file's keys (tokenizer, chat template, FIM ids) must not alter their
types or bytes, so values keep their GGUF type and strings stay raw bytes when copied.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import quant_shape_to_byte_shape

from convert.errors import InvalidGGUFError, UnsupportedArchitectureError


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


def open_gguf(path: str | os.PathLike[str]) -> GGUFReader:
    """Open a GGUF for reading; a damaged file becomes :class:`InvalidGGUFError`."""
    path = Path(path)
    try:
        return GGUFReader(path)
    except (ValueError, OSError, IndexError, KeyError, struct.error) as exc:
        raise InvalidGGUFError(
            f"{path}: not a readable GGUF file ({exc}); it may be truncated or not a GGUF"
        ) from exc


def is_gguf(path: str | os.PathLike[str]) -> bool:
    """True when the file starts with the GGUF magic."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


def read_kv(reader: GGUFReader) -> dict[str, KV]:
    """All metadata of a file except the GGUF.* header fields, in file order."""
    out: dict[str, KV] = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        main = field.types[0]
        if main == GGUFValueType.ARRAY:
            sub = field.types[-1]
            if len(field.types) != 2:
                raise InvalidGGUFError(f"nested metadata array {name!r} is not supported")
            if sub == GGUFValueType.STRING:
                values: list[Any] = [bytes(field.parts[i]) for i in field.data]
            else:
                values = [v for i in field.data for v in field.parts[i].tolist()]
            out[name] = KV(values, main, sub)
        elif main == GGUFValueType.STRING:
            out[name] = KV(bytes(field.parts[-1]), main)
        else:
            out[name] = KV(field.parts[-1].tolist()[0], main)
    return out


def as_text(kv: KV | None) -> str | None:
    if kv is None:
        return None
    return kv.value.decode("utf-8") if isinstance(kv.value, bytes) else str(kv.value)


def as_int(kv: KV | None) -> int | None:
    return None if kv is None else int(kv.value)


def token_texts(kvs: Mapping[str, KV]) -> list[str]:
    """The vocabulary as text (invalid UTF-8 replaced; only used for lookups)."""
    tokens = kvs.get("tokenizer.ggml.tokens")
    if tokens is None:
        return []
    return [t.decode("utf-8", "replace") if isinstance(t, bytes) else t for t in tokens.value]


def require_llama(kvs: Mapping[str, KV], path: Path) -> None:
    arch = as_text(kvs.get("general.architecture"))
    if arch != "llama":
        raise UnsupportedArchitectureError(
            f"{path}: architecture is {arch!r}; only 'llama' models (Llama, Code Llama) "
            "can be converted"
        )


def add_kvs(writer: GGUFWriter, kvs: Mapping[str, KV]) -> None:
    for key, kv in kvs.items():
        if key == "general.architecture":
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


def numpy_shape(tensor: Any) -> tuple[int, ...]:
    """A GGUFReader tensor's logical shape in numpy order (ggml stores ne reversed)."""
    return tuple(int(d) for d in reversed(tensor.shape.tolist()))


def read_tensor_bytes(path: str | os.PathLike[str], tensor: Any) -> np.ndarray:
    """One tensor's stored bytes, shaped (..., bytes per row), read with a plain file read.

    Reading through the reader's memory map would leave every touched page of the whole
    file in the process's resident set; a read keeps memory at one tensor.
    """
    shape = numpy_shape(tensor)
    count = int(tensor.n_bytes)
    data = np.fromfile(path, dtype=np.uint8, count=count, offset=int(tensor.data_offset))
    if data.size != count:
        raise InvalidGGUFError(
            f"{path}: tensor {tensor.name!r} is cut short; the file is truncated"
        )
    return data.reshape(quant_shape_to_byte_shape(shape, tensor.tensor_type))
