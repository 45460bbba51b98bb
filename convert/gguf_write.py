"""Write a GGUF from planned tensors: header first, then tensor data one at a time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter
from tqdm import tqdm

from llamacode.convert.atomic import atomic_file
from llamacode.convert.gguf_kv import KV, add_kvs, add_planned_tensor, tensor_nbytes
from llamacode.runtime.gguf_keys import LLAMA_ARCH


@dataclass(frozen=True)
class PlannedTensor:
    """A tensor known by name, numpy shape and type before its data is produced."""

    name: str
    shape: tuple[int, ...]
    qtype: GGMLQuantizationType
    produce: Callable[[], np.ndarray]

    @property
    def nbytes(self) -> int:
        return tensor_nbytes(self.shape, self.qtype)


def write_gguf(
    output: str | Path,
    kvs: Mapping[str, KV],
    tensors: Sequence[PlannedTensor],
    arch: str = LLAMA_ARCH,
    progress: bool = True,
    desc: str = "write",
) -> int:
    """Write atomically (whole file or none); returns the file size in bytes."""
    with atomic_file(output) as tmp:
        writer = GGUFWriter(tmp, arch)
        try:
            add_kvs(writer, kvs)
            for t in tensors:
                add_planned_tensor(writer, t.name, t.shape, t.qtype)
            writer.write_header_to_file(tmp)
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            total = sum(t.nbytes for t in tensors)
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=desc, disable=not progress
            ) as bar:
                for t in tensors:
                    data = t.produce()
                    if data.nbytes != t.nbytes:
                        raise ValueError(
                            f"{t.name}: produced {data.nbytes} bytes, planned {t.nbytes}"
                        )
                    writer.write_tensor_data(data)
                    bar.update(data.nbytes)
                    del data
        finally:
            writer.close()
        return tmp.stat().st_size
