"""GGUF -> GGUF of another type.

f32/f16/bf16/q8_0/q4_0 are produced in numpy (``gguf.quants``), tensor by tensor.
Every other type (the k-quants Q4_K_M, Q5_K_M, Q6_K, ...) goes through llama.cpp's own
quantizer, which also picks per-tensor types the way llama.cpp users expect.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

from llamacode.convert.atomic import atomic_file
from llamacode.convert.errors import QuantizeFailedError, UnsupportedTypeError
from llamacode.convert.export_gguf import OUTPUT_TYPES, encode, tensor_type
from llamacode.convert.gguf_kv import (
    as_text,
    kv_uint32,
    numpy_shape,
    open_gguf,
    read_kv,
    read_tensor_bytes,
)
from llamacode.convert.gguf_write import PlannedTensor, write_gguf

Engine = Literal["auto", "numpy", "llama.cpp"]
FLOAT_TYPES = ("f32", "f16", "bf16")


@dataclass(frozen=True)
class QuantizeReport:
    output: Path
    input_bytes: int
    output_bytes: int
    seconds: float
    engine: str
    tensor_types: dict[str, int]


def llama_cpp_ftypes() -> dict[str, int]:
    """Type names llama.cpp's quantizer accepts (upper case) -> llama_ftype value."""
    import llama_cpp

    out = {"F32": llama_cpp.LLAMA_FTYPE_ALL_F32}
    for attr in dir(llama_cpp):
        if attr.startswith("LLAMA_FTYPE_MOSTLY_"):
            out[attr.removeprefix("LLAMA_FTYPE_MOSTLY_")] = getattr(llama_cpp, attr)
    return out


def tensor_type_counts(path: Path) -> dict[str, int]:
    return dict(Counter(t.tensor_type.name for t in open_gguf(path).tensors))


def quantize_gguf(
    source: str | Path,
    output: str | Path,
    type_name: str,
    engine: Engine = "auto",
    threads: int | None = None,
    allow_requantize: bool = False,
    progress: bool = True,
) -> QuantizeReport:
    """Quantize ``source`` to ``type_name``; the output appears only when complete.

    A source that is already quantized is refused for quantized targets unless
    ``allow_requantize``: quantizing twice loses more than quantizing once from f16.
    """
    source, output = Path(source), Path(output)
    if engine == "auto":
        engine = "numpy" if type_name.lower() in OUTPUT_TYPES else "llama.cpp"
    if not allow_requantize and type_name.lower() not in FLOAT_TYPES:
        quantized = sorted(
            {t.tensor_type.name for t in open_gguf(source).tensors} - {"F32", "F16", "BF16"}
        )
        if quantized:
            raise QuantizeFailedError(
                f"{source}: already quantized ({', '.join(quantized)}); quantize from an f32, "
                "f16 or bf16 GGUF, or pass --allow-requantize to accept the extra loss"
            )
    start = time.perf_counter()
    if engine == "numpy":
        _quantize_numpy(source, output, type_name, progress)
    else:
        _quantize_llama_cpp(source, output, type_name, threads)
    return QuantizeReport(
        output=output,
        input_bytes=source.stat().st_size,
        output_bytes=output.stat().st_size,
        seconds=time.perf_counter() - start,
        engine=engine,
        tensor_types=tensor_type_counts(output),
    )


def _requantized(
    path: Path, tensor: Any, shape: tuple[int, ...], qtype: GGMLQuantizationType
) -> np.ndarray:
    raw = read_tensor_bytes(path, tensor)
    if tensor.tensor_type == qtype:
        return raw
    values = dequantize(raw, tensor.tensor_type).reshape(shape)
    return encode(values, qtype)


def _quantize_numpy(source: Path, output: Path, type_name: str, progress: bool) -> None:
    if type_name.lower() not in OUTPUT_TYPES:
        raise UnsupportedTypeError(
            f"numpy quantization writes {', '.join(OUTPUT_TYPES)}; use the llama.cpp engine "
            f"for {type_name}"
        )
    target, file_type = OUTPUT_TYPES[type_name.lower()]
    reader = open_gguf(source)
    kvs = read_kv(reader)
    kvs["general.file_type"] = kv_uint32(int(file_type))
    kvs["general.quantization_version"] = kv_uint32(2)
    names = {t.name for t in reader.tensors}
    output_name = "output.weight" if "output.weight" in names else "token_embd.weight"
    planned = []
    for t in reader.tensors:
        shape = numpy_shape(t)
        qtype = tensor_type(t.name, shape, target, output_name)
        planned.append(
            PlannedTensor(t.name, shape, qtype, partial(_requantized, source, t, shape, qtype))
        )
    arch = as_text(kvs.get("general.architecture")) or "llama"
    write_gguf(output, kvs, planned, arch=arch, progress=progress, desc=f"quantize {type_name}")


def _quantize_llama_cpp(source: Path, output: Path, type_name: str, threads: int | None) -> None:
    import llama_cpp

    ftypes = llama_cpp_ftypes()
    ftype = ftypes.get(type_name.upper())
    if ftype is None:
        raise UnsupportedTypeError(
            f"llama.cpp cannot quantize to {type_name!r}; known types: {', '.join(sorted(ftypes))}"
        )
    open_gguf(source)  # a clear error for a damaged file instead of a C++ abort
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or os.cpu_count() or 1
    params.allow_requantize = True  # the caller has already decided
    with atomic_file(output) as tmp:
        rc = llama_cpp.llama_model_quantize(
            str(source).encode(), str(tmp).encode(), ctypes.byref(params)
        )
        if rc != 0:
            raise QuantizeFailedError(
                f"{source}: llama.cpp could not quantize it to {type_name} (code {rc}); "
                "see the log above"
            )
