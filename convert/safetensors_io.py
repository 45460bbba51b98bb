"""Safetensors read tensor by tensor, with the header checked against the file first.

The ``safetensors`` package maps whole files and has no numpy type for bf16; reading
through our own validated header lets a lying or truncated file fail with a clear error
before any output exists, and keeps memory at one tensor.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from llamacode.convert.errors import CorruptHeaderError, TruncatedFileError

# Safetensors dtype -> (numpy storage dtype, bytes per element). bf16 is stored as uint16.
_DTYPES: dict[str, tuple[np.dtype, int]] = {
    "F64": (np.dtype("<f8"), 8),
    "F32": (np.dtype("<f4"), 4),
    "F16": (np.dtype("<f2"), 2),
    "BF16": (np.dtype("<u2"), 2),
}
_MAX_HEADER = 100 * 1024 * 1024


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    """bf16 bits (uint16) -> float32, exactly (bf16 is the top half of a float32)."""
    return (raw.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(values: np.ndarray) -> np.ndarray:
    """float32 -> bf16 bits (uint16), rounding to nearest even like torch does."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    nan = np.isnan(values)
    out = (rounded >> 16).astype(np.uint16)
    out[nan] = 0x7FC0
    return out


class SafetensorsFile:
    """One .safetensors file; :meth:`read_f32` loads a single tensor as float32."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        size = self.path.stat().st_size
        with self.path.open("rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise TruncatedFileError(
                    f"{self.path}: file is {size} bytes, too short for a header"
                )
            (header_len,) = struct.unpack("<Q", head)
            if header_len > _MAX_HEADER:
                raise CorruptHeaderError(
                    f"{self.path}: header length {header_len} bytes is implausible; "
                    "the file is not safetensors or is damaged"
                )
            if 8 + header_len > size:
                raise TruncatedFileError(
                    f"{self.path}: header needs {header_len} bytes but the file has "
                    f"{size - 8}; the file is truncated (copy it again)"
                )
            raw_header = f.read(header_len)
        try:
            header = json.loads(raw_header)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptHeaderError(f"{self.path}: header is not valid JSON ({exc})") from exc
        if not isinstance(header, dict):
            raise CorruptHeaderError(f"{self.path}: header is not a JSON object")
        self.data_start = 8 + header_len
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self.entries: dict[str, TensorEntry] = {}
        data_size = size - self.data_start
        for name, info in header.items():
            entry = self._entry(name, info)
            if entry.end > data_size:
                raise TruncatedFileError(
                    f"{self.path}: tensor {name!r} needs bytes up to {entry.end} of the data "
                    f"section but the file holds only {data_size}; the file is truncated"
                )
            self.entries[name] = entry

    def _entry(self, name: str, info: object) -> TensorEntry:
        try:
            dtype = info["dtype"]  # type: ignore[index]
            shape = tuple(int(d) for d in info["shape"])  # type: ignore[index]
            start, end = (int(o) for o in info["data_offsets"])  # type: ignore[index]
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptHeaderError(
                f"{self.path}: header entry for {name!r} is malformed ({exc!r})"
            ) from exc
        if dtype not in _DTYPES:
            raise CorruptHeaderError(
                f"{self.path}: tensor {name!r} has dtype {dtype}; only "
                f"{', '.join(_DTYPES)} weights can be converted"
            )
        expected = math.prod(shape) * _DTYPES[dtype][1]
        if start < 0 or end < start or end - start != expected or any(d < 0 for d in shape):
            raise CorruptHeaderError(
                f"{self.path}: header says tensor {name!r} is {dtype} {list(shape)} "
                f"({expected} bytes) but its data offsets [{start}, {end}] span "
                f"{end - start} bytes; the header is inconsistent"
            )
        return TensorEntry(name, dtype, shape, start, end)

    def read_f32(self, name: str) -> np.ndarray:
        """The tensor as a float32 array (bf16 and f16 widen exactly)."""
        entry = self.entries[name]
        storage, itemsize = _DTYPES[entry.dtype]
        count = entry.nbytes // itemsize
        with self.path.open("rb") as f:
            f.seek(self.data_start + entry.start)
            data = np.fromfile(f, dtype=storage, count=count)
        if data.size != count:
            raise TruncatedFileError(
                f"{self.path}: tensor {name!r} was cut short while reading; the file is truncated"
            )
        data = data.reshape(entry.shape)
        if entry.dtype == "BF16":
            return bf16_to_f32(data)
        return data.astype(np.float32, copy=False)


def write_safetensors(
    path: str | os.PathLike[str],
    layout: Iterable[tuple[str, tuple[int, ...]]],
    produce: Callable[[str], np.ndarray],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write float32 tensors one at a time: ``produce(name)`` is called once per tensor."""
    order = list(layout)
    header: dict[str, object] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for name, shape in order:
        nbytes = math.prod(shape) * 4
        header[name] = {
            "dtype": "F32",
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for name, shape in order:
            _write_tensor(f, name, shape, produce(name))


def _write_tensor(f: BinaryIO, name: str, shape: tuple[int, ...], array: np.ndarray) -> None:
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"tensor {name} has shape {array.shape}, planned {shape}")
    np.ascontiguousarray(array, dtype="<f4").tofile(f)
