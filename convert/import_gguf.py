"""GGUF -> checkpoint directory, so an existing model can be fine-tuned.

Weights are dequantized to float32 in Meta's layout (a llama GGUF already stores q/k in
Meta's interleaved order, so no permutation); the tokenizer is kept as the GGUF's own
``tokenizer.*`` keys in ``tokenizer.gguf`` (checkpoint tokenizer type "gguf").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter
from gguf.quants import dequantize
from tqdm import tqdm

from convert.atomic import atomic_directory
from convert.errors import MissingTokenizerError, TensorShapeError, UnsupportedArchitectureError
from convert.gguf_kv import (
    KV,
    add_kvs,
    as_int,
    as_text,
    numpy_shape,
    open_gguf,
    read_kv,
    read_tensor_bytes,
    require_llama,
)
from convert.llama_layout import LlamaHParams, meta_from_gguf
from convert.safetensors_io import write_safetensors
from convert.sources import CHECKPOINT_FORMAT, CHECKPOINT_VERSION
from convert.vocab import Vocab


@dataclass(frozen=True)
class ImportReport:
    output: Path
    hparams: LlamaHParams
    seconds: float
    fim: dict[str, int] | None


def hparams_from_gguf(kvs: dict[str, KV], n_vocab: int, tied: bool, path: Path) -> LlamaHParams:
    def need(key: str) -> Any:
        if key not in kvs:
            raise UnsupportedArchitectureError(f"{path}: metadata key {key!r} is missing")
        return kvs[key].value

    scaling = as_text(kvs.get("llama.rope.scaling.type"))
    if scaling not in (None, "none"):
        raise UnsupportedArchitectureError(
            f"{path}: RoPE scaling {scaling!r} is not supported by the training model"
        )
    hp = LlamaHParams(
        dim=int(need("llama.embedding_length")),
        n_layers=int(need("llama.block_count")),
        n_heads=int(need("llama.attention.head_count")),
        n_kv_heads=int(
            kvs["llama.attention.head_count_kv"].value
            if "llama.attention.head_count_kv" in kvs
            else need("llama.attention.head_count")
        ),
        vocab_size=n_vocab,
        hidden_dim=int(need("llama.feed_forward_length")),
        norm_eps=float(need("llama.attention.layer_norm_rms_epsilon")),
        rope_theta=float(kvs["llama.rope.freq_base"].value)
        if "llama.rope.freq_base" in kvs
        else 10000.0,
        max_seq_len=int(need("llama.context_length")),
        tie_embeddings=tied,
    )
    problems = hp.problems()
    rope_dims = as_int(kvs.get("llama.rope.dimension_count"))
    if rope_dims is not None and rope_dims != hp.head_dim:
        problems.append(f"partial RoPE ({rope_dims} of {hp.head_dim} dims)")
    key_len = as_int(kvs.get("llama.attention.key_length"))
    if key_len is not None and key_len != hp.head_dim:
        problems.append(f"head size {key_len} != embedding_length / head_count")
    if problems:
        raise UnsupportedArchitectureError(f"{path}: {'; '.join(problems)} is not supported")
    return hp


def import_gguf(source: str | Path, output: str | Path, progress: bool = True) -> ImportReport:
    """Write ``source`` (any llama GGUF, quantized or not) as a checkpoint directory."""
    source = Path(source)
    start = time.perf_counter()
    reader = open_gguf(source)
    kvs = read_kv(reader)
    require_llama(kvs, source)
    by_meta = {}
    for t in reader.tensors:
        meta = meta_from_gguf(t.name)
        if meta is None:
            raise UnsupportedArchitectureError(
                f"{source}: tensor {t.name!r} is not part of the Llama architecture the "
                "training model implements"
            )
        by_meta[meta] = t
    if "tok_embeddings.weight" not in by_meta:
        raise TensorShapeError(f"{source}: tensor 'token_embd.weight' is missing")
    n_vocab = numpy_shape(by_meta["tok_embeddings.weight"])[0]
    hp = hparams_from_gguf(kvs, n_vocab, "output.weight" not in by_meta, source)
    shapes = hp.shapes()
    for meta, shape in shapes.items():
        if meta not in by_meta:
            raise TensorShapeError(f"{source}: tensor {meta!r} is missing")
        actual = numpy_shape(by_meta[meta])
        if actual != shape:
            raise TensorShapeError(
                f"{source}: tensor {by_meta[meta].name!r} has shape {list(actual)}, the "
                f"metadata requires {list(shape)}"
            )
    tokenizer = {k: v for k, v in kvs.items() if k.startswith("tokenizer.")}
    if "tokenizer.ggml.tokens" not in tokenizer:
        raise MissingTokenizerError(f"{source}: the GGUF holds no tokenizer")
    tokens = [t.decode("utf-8", "replace") for t in tokenizer["tokenizer.ggml.tokens"].value]
    found = Vocab(tokenizer, tokens).detect_fim()
    fim = (
        {"pre": found.pre, "suf": found.suf, "mid": found.mid, "eot": found.eot}
        if found is not None and found.mid is not None
        else None
    )

    def produce(meta: str) -> np.ndarray:
        t = by_meta[meta]
        data = dequantize(read_tensor_bytes(source, t), t.tensor_type).reshape(shapes[meta])
        bar.update(t.n_bytes)
        return data

    with atomic_directory(output) as tmp:
        total = sum(int(by_meta[m].n_bytes) for m in shapes)
        with tqdm(
            total=total, unit="B", unit_scale=True, desc="import", disable=not progress
        ) as bar:
            write_safetensors(tmp / "model.safetensors", list(shapes.items()), produce)
        writer = GGUFWriter(tmp / "tokenizer.gguf", "llama")
        try:
            add_kvs(writer, tokenizer)
            writer.write_header_to_file(tmp / "tokenizer.gguf")
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
        finally:
            writer.close()
        config = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "model": hp.to_dict(),
            "tokenizer": {"type": "gguf", "file": "tokenizer.gguf", "fim": fim},
            "chat_template": as_text(kvs.get("tokenizer.chat_template")),
            "training": {
                "stage": "imported",
                "source": source.name,
                "source_name": as_text(kvs.get("general.name")),
            },
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return ImportReport(Path(output), hp, time.perf_counter() - start, fim)
