"""The one reader of GGUF files: a bounds-checked header parse, then tensor data on demand.

A GGUF is untrusted input. llama.cpp trusts the counts, lengths and offsets it reads;
this reader checks each one against the file's size before anything is allocated, so a
hostile or truncated file becomes an :class:`InvalidModelError` instead of a crash. The
same pass gives ``llamacode info`` the model's facts without loading it, gives convert the
metadata (with its GGUF types) and tensors it copies, and gives training a GGUF's
vocabulary.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llamacode.runtime.errors import InvalidModelError, ModelNotFoundError
from llamacode.runtime.gguf_keys import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, Keys

SUPPORTED_VERSIONS = (2, 3)
MAX_DIMS = 4
# Far above any real model; far below what would exhaust memory while parsing.
MAX_TENSORS = 1_000_000
MAX_KV = 1_000_000
MAX_STRING_BYTES = 256 * 1024 * 1024
MAX_ARRAY_DEPTH = 2

# GGUF value types (gguf-py's GGUFValueType).
_SCALARS: dict[int, str] = {
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
_STRING = 8
_ARRAY = 9


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's descriptor: where its data sits and how big it is."""

    name: str
    shape: tuple[int, ...]  # ggml order: the row length first
    ggml_type: int
    offset: int  # from the start of the tensor data
    n_bytes: int


@dataclass
class GGUFHeader:
    """Everything in a GGUF before the tensor data."""

    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0
    file_size: int = 0
    # key -> (GGUF value type, element type for arrays else None), to write values back as stored
    types: dict[str, tuple[int, int | None]] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.metadata.get(key, default)

    @property
    def architecture(self) -> str:
        arch = self.metadata.get(Keys.General.ARCHITECTURE, "unknown")
        return arch.decode("utf-8", "replace") if isinstance(arch, bytes) else str(arch)

    def arch_key(self, key: str, default: Any = None) -> Any:
        """Read an ``{arch}`` key of :class:`Keys` for this file's architecture
        (``Keys.LLM.CONTEXT_LENGTH`` reads ``llama.context_length`` in a llama file)."""
        return self.metadata.get(key.format(arch=self.architecture), default)


def read_tensor_data(path: str | Path, start: int, n_bytes: int) -> bytearray:
    """``n_bytes`` of tensor data at ``start`` (the header's ``data_offset`` plus the tensor's
    ``offset``), read with a plain file read.

    Reading through a memory map would leave every touched page of the whole file in the
    process's resident set; a read keeps memory at one tensor. The header parse checked
    that each tensor lies inside the file; a shorter read means the file changed since.
    """
    data = bytearray(n_bytes)
    with Path(path).open("rb") as handle:
        handle.seek(start)
        got = handle.readinto(data)
    if got != n_bytes:
        raise InvalidModelError(
            f"{path} is cut short: {n_bytes} bytes of tensor data at offset {start} are not "
            "all there (the file changed or was truncated after it was opened). Convert or "
            "download it again."
        )
    return data


def read_header(
    path: str | Path, *, skip_arrays: Iterable[str] = (), raw_strings: bool = False
) -> GGUFHeader:
    """Parse and check a GGUF's header.

    ``skip_arrays`` names array keys whose contents are not needed (e.g. the merges of
    a BPE vocabulary); they are bounds-checked and stored as their length only.
    ``raw_strings`` keeps string values as the bytes stored (for copying metadata
    unchanged); otherwise they are text, with invalid UTF-8 replaced.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(
            f"model file not found: {path}. Pass an existing .gguf file, or run "
            "`llamacode models` to see the models llamacode can find."
        )
    size = path.stat().st_size
    if size < 24:
        raise InvalidModelError(f"{path} is not a GGUF model: the file is only {size} bytes long.")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        return _Parser(path, buf, size, frozenset(skip_arrays), raw_strings).parse()


class _Parser:
    def __init__(
        self, path: Path, buf: mmap.mmap, size: int, skip: frozenset[str], raw: bool
    ) -> None:
        self.path = path
        self.buf = buf
        self.size = size
        self.pos = 0
        self.skip = skip
        self.raw = raw

    def fail(self, problem: str) -> InvalidModelError:
        return InvalidModelError(
            f"{self.path} is not a valid GGUF model: {problem}. The file may be truncated or "
            "corrupt; download or convert it again."
        )

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"{what} runs past the end of the file (offset {self.pos})")

    def scalar(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self, what: str, *, raw: bool = False) -> Any:
        n = self.scalar("<Q", what)
        if n > MAX_STRING_BYTES:
            raise self.fail(f"{what} claims a length of {n} bytes")
        self.need(n, what)
        data = self.buf[self.pos : self.pos + n]
        self.pos += n
        return data if raw else data.decode("utf-8", errors="replace")

    def value(self, vtype: int, key: str, depth: int = 0) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype], f"value of {key!r}")
        if vtype == _STRING:
            return self.string(f"string value of {key!r}", raw=self.raw)
        if vtype == _ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise self.fail(f"array {key!r} nests too deeply")
            item_type = self.scalar("<I", f"array type of {key!r}")
            count = self.scalar("<Q", f"array length of {key!r}")
            min_item = 8 if item_type in (_STRING, _ARRAY) else _item_size(item_type)
            if min_item is None:
                raise self.fail(f"array {key!r} has unknown element type {item_type}")
            if count * min_item > self.size - self.pos:
                raise self.fail(f"array {key!r} claims {count} elements, more than the file holds")
            if item_type in _SCALARS and (key in self.skip or count > 4096):
                return self.scalar_array(item_type, count, key)
            items = [self.value(item_type, key, depth + 1) for _ in range(count)]
            return _SkippedArray(len(items)) if key in self.skip else items
        raise self.fail(f"key {key!r} has unknown value type {vtype}")

    def scalar_array(self, item_type: int, count: int, key: str) -> Any:
        fmt = _SCALARS[item_type]
        n = struct.calcsize(fmt) * count
        self.need(n, f"array {key!r}")
        start = self.pos
        self.pos += n
        if key in self.skip:
            return _SkippedArray(count)
        return list(struct.unpack_from(f"<{count}{fmt[1]}", self.buf, start))

    def parse(self) -> GGUFHeader:
        magic = bytes(self.buf[0:4])
        if magic != GGUF_MAGIC:
            raise InvalidModelError(
                f"{self.path} is not a GGUF model (it starts with {magic!r}, not b'GGUF'). "
                "llamacode runs GGUF files; convert other formats with `llamacode convert`."
            )
        self.pos = 4
        version = self.scalar("<I", "version")
        if version not in SUPPORTED_VERSIONS:
            raise self.fail(f"GGUF version {version} is not supported (supported: 2 and 3)")
        n_tensors = self.scalar("<Q", "tensor count")
        n_kv = self.scalar("<Q", "metadata count")
        if n_tensors > MAX_TENSORS:
            raise self.fail(f"it claims {n_tensors} tensors")
        if n_kv > MAX_KV:
            raise self.fail(f"it claims {n_kv} metadata entries")
        metadata: dict[str, Any] = {}
        types: dict[str, tuple[int, int | None]] = {}
        for _ in range(n_kv):
            key = self.string("metadata key")
            vtype = self.scalar("<I", f"type of {key!r}")
            item_type = self.peek_item_type() if vtype == _ARRAY else None
            metadata[key] = self.value(vtype, key)
            types[key] = (vtype, item_type)
        infos = [self.tensor_info() for _ in range(n_tensors)]
        alignment = metadata.get(Keys.General.ALIGNMENT, GGUF_DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise self.fail(f"{Keys.General.ALIGNMENT} {alignment!r} is not a power of two")
        data_offset = -(-self.pos // alignment) * alignment
        tensors = [self.place(info, data_offset, alignment) for info in infos]
        return GGUFHeader(self.path, version, metadata, tensors, data_offset, self.size, types)

    def peek_item_type(self) -> int | None:
        """The element type of the array that starts here (checked when the array is read)."""
        if self.pos + 4 > self.size:
            return None
        return struct.unpack_from("<I", self.buf, self.pos)[0]

    def tensor_info(self) -> tuple[str, tuple[int, ...], int, int]:
        name = self.string("tensor name")
        n_dims = self.scalar("<I", f"dimension count of {name!r}")
        if n_dims == 0 or n_dims > MAX_DIMS:
            raise self.fail(f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS} allowed)")
        shape = tuple(self.scalar("<Q", f"shape of {name!r}") for _ in range(n_dims))
        ggml_type = self.scalar("<I", f"type of {name!r}")
        offset = self.scalar("<Q", f"offset of {name!r}")
        return name, shape, ggml_type, offset

    def place(
        self, info: tuple[str, tuple[int, ...], int, int], base: int, alignment: int
    ) -> TensorInfo:
        name, shape, ggml_type, offset = info
        n_bytes = tensor_nbytes(shape, ggml_type)
        if n_bytes is None:
            raise self.fail(
                f"tensor {name!r} has unknown or misaligned type {ggml_type} for shape {shape}"
            )
        if offset % alignment:
            raise self.fail(f"tensor {name!r} has an unaligned offset {offset}")
        if base + offset + n_bytes > self.size:
            raise self.fail(
                f"tensor {name!r} ({n_bytes} bytes at offset {offset}) lies past the end of the file"
            )
        return TensorInfo(name, shape, ggml_type, offset, n_bytes)


class _SkippedArray(int):
    """Stands in for an array whose contents were not kept: its value is the length."""


def _item_size(item_type: int) -> int | None:
    fmt = _SCALARS.get(item_type)
    return struct.calcsize(fmt) if fmt else None


def tensor_nbytes(shape: tuple[int, ...], ggml_type: int) -> int | None:
    """Bytes a tensor of this shape and type occupies, or None if they do not fit together."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    try:
        block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
    except (ValueError, KeyError):
        return None
    if any(d <= 0 for d in shape) or shape[0] % block:
        return None
    count = 1
    for d in shape:
        count *= d
        if count > 1 << 48:
            return None
    return count // block * type_size
