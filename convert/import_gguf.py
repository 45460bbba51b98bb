"""GGUF -> checkpoint directory, so an existing model can be fine-tuned.

Weights are dequantized to float32 in Meta's layout (a llama GGUF already stores q/k in
Meta's interleaved order, so no permutation); the tokenizer is kept as the GGUF's own
``tokenizer.*`` keys in ``tokenizer.gguf`` (checkpoint tokenizer type "gguf").
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf import GGUFWriter
from gguf.quants import dequantize
from tqdm import tqdm

from llamacode.convert.atomic import atomic_directory
from llamacode.convert.checkpoint_format import (
    FIM_ROLES,
    MODEL_FILE,
    CheckpointConfig,
    ModelConfig,
    TokenizerRef,
    write_config,
)
from llamacode.convert.errors import (
    MissingTokenizerError,
    TensorShapeError,
    UnsupportedArchitectureError,
)
from llamacode.convert.gguf_kv import (
    KV,
    add_kvs,
    as_int,
    as_text,
    numpy_shape,
    open_gguf,
    read_kv,
    read_tensor_bytes,
    require_llama,
    token_texts,
)
from llamacode.convert.llama_layout import gguf_name, meta_from_gguf, meta_shapes
from llamacode.convert.safetensors_io import write_safetensors
from llamacode.convert.vocab import Vocab
from llamacode.runtime.gguf_keys import LLAMA_ARCH, TOKENIZER_PREFIX, Keys
from llamacode.runtime.model_facts import LLAMA_DEFAULT_ROPE_BASE

EMBEDDINGS = "tok_embeddings.weight"
OUTPUT = "output.weight"


@dataclass(frozen=True)
class ImportReport:
    output: Path
    hparams: ModelConfig
    seconds: float
    fim: dict[str, int] | None


def hparams_from_gguf(kvs: dict[str, KV], n_vocab: int, tied: bool, path: Path) -> ModelConfig:
    def get(key: str) -> KV | None:
        return kvs.get(key.format(arch=LLAMA_ARCH))

    def need(key: str) -> Any:
        kv = get(key)
        if kv is None:
            name = key.format(arch=LLAMA_ARCH)
            raise UnsupportedArchitectureError(f"{path}: metadata key {name!r} is missing")
        return kv.value

    scaling = as_text(get(Keys.Rope.SCALING_TYPE))
    if scaling not in (None, "none"):
        raise UnsupportedArchitectureError(
            f"{path}: RoPE scaling {scaling!r} is not supported by the training model"
        )
    rope = get(Keys.Rope.FREQ_BASE)
    heads_kv = get(Keys.Attention.HEAD_COUNT_KV)
    try:
        hp = ModelConfig(
            dim=int(need(Keys.LLM.EMBEDDING_LENGTH)),
            n_layers=int(need(Keys.LLM.BLOCK_COUNT)),
            n_heads=int(need(Keys.Attention.HEAD_COUNT)),
            n_kv_heads=int(need(Keys.Attention.HEAD_COUNT) if heads_kv is None else heads_kv.value),
            vocab_size=n_vocab,
            hidden_dim=int(need(Keys.LLM.FEED_FORWARD_LENGTH)),
            norm_eps=float(need(Keys.Attention.LAYERNORM_RMS_EPS)),
            rope_theta=LLAMA_DEFAULT_ROPE_BASE if rope is None else float(rope.value),
            max_seq_len=int(need(Keys.LLM.CONTEXT_LENGTH)),
            tie_embeddings=tied,
        )
    except (TypeError, ValueError) as exc:
        raise UnsupportedArchitectureError(f"{path}: {exc}; this is not supported") from exc
    problems = []
    rope_dims = as_int(get(Keys.Rope.DIMENSION_COUNT))
    if rope_dims is not None and rope_dims != hp.head_dim:
        problems.append(f"partial RoPE ({rope_dims} of {hp.head_dim} dims)")
    key_len = as_int(get(Keys.Attention.KEY_LENGTH))
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
    if EMBEDDINGS not in by_meta:
        raise TensorShapeError(f"{source}: tensor {gguf_name(EMBEDDINGS)!r} is missing")
    n_vocab = numpy_shape(by_meta[EMBEDDINGS])[0]
    hp = hparams_from_gguf(kvs, n_vocab, OUTPUT not in by_meta, source)
    shapes = meta_shapes(hp)
    for meta, shape in shapes.items():
        if meta not in by_meta:
            raise TensorShapeError(f"{source}: tensor {meta!r} is missing")
        actual = numpy_shape(by_meta[meta])
        if actual != shape:
            raise TensorShapeError(
                f"{source}: tensor {by_meta[meta].name!r} has shape {list(actual)}, the "
                f"metadata requires {list(shape)}"
            )
    tokenizer = {k: v for k, v in kvs.items() if k.startswith(TOKENIZER_PREFIX)}
    tokens = token_texts(tokenizer)
    if not tokens:
        raise MissingTokenizerError(f"{source}: the GGUF holds no tokenizer")
    found = Vocab(tokenizer, tokens).detect_fim()
    fim = (
        {role: getattr(found, role) for role in FIM_ROLES}
        if found is not None and found.mid is not None
        else None
    )

    def produce(meta: str) -> np.ndarray:
        t = by_meta[meta]
        data = dequantize(read_tensor_bytes(source, t), t.tensor_type).reshape(shapes[meta])
        bar.update(t.n_bytes)
        return data

    tokenizer_ref = TokenizerRef("gguf", fim)
    with atomic_directory(output) as tmp:
        total = sum(int(by_meta[m].n_bytes) for m in shapes)
        with tqdm(
            total=total, unit="B", unit_scale=True, desc="import", disable=not progress
        ) as bar:
            write_safetensors(tmp / MODEL_FILE, list(shapes.items()), produce)
        writer = GGUFWriter(tmp / tokenizer_ref.file, LLAMA_ARCH)
        try:
            add_kvs(writer, tokenizer)
            writer.write_header_to_file(tmp / tokenizer_ref.file)
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
        finally:
            writer.close()
        training = {
            "stage": "imported",
            "source": source.name,
            "source_name": as_text(kvs.get(Keys.General.NAME)),
        }
        template = as_text(kvs.get(Keys.Tokenizer.CHAT_TEMPLATE))
        write_config(tmp, CheckpointConfig(hp, tokenizer_ref, template, training))
    return ImportReport(Path(output), hp, time.perf_counter() - start, fim)
