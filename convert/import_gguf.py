"""GGUF -> float32 weights in Meta's names, in memory or as a checkpoint directory, so an
existing model can be fine-tuned.

Reads the architectures of :data:`GGUF_ARCH_ROPE` (llama, qwen2). Tensors are dequantized
one at a time and keep the file's q/k row order: llama.cpp's llama tensors are interleaved
as Meta's, its qwen2 tensors are in Hugging Face's rotate_half order, and the config's
``rope_layout`` records which, so nothing is permuted. The tokenizer is kept as the GGUF's
own ``tokenizer.*`` keys in ``tokenizer.gguf`` (checkpoint tokenizer type "gguf").
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
    GGUFTensor,
    add_kvs,
    as_int,
    as_text,
    numpy_shape,
    open_gguf,
    read_kv,
    read_tensor_bytes,
    token_texts,
)
from llamacode.convert.llama_layout import GGUF_ARCH_ROPE, gguf_name, meta_from_gguf, meta_shapes
from llamacode.convert.safetensors_io import write_safetensors
from llamacode.convert.vocab import Vocab
from llamacode.runtime.gguf_keys import TOKENIZER_PREFIX, Keys
from llamacode.runtime.model_facts import LLAMA_DEFAULT_ROPE_BASE

EMBEDDINGS = "tok_embeddings.weight"
OUTPUT = "output.weight"


@dataclass(frozen=True)
class ImportReport:
    output: Path
    hparams: ModelConfig
    seconds: float
    fim: dict[str, int] | None


def hparams_from_gguf(
    kvs: dict[str, KV], arch: str, n_vocab: int, tied: bool, qkv_bias: bool, path: Path
) -> ModelConfig:
    """The hyper-parameters of a GGUF of architecture ``arch`` (its ``{arch}.*`` keys)."""

    def get(key: str) -> KV | None:
        return kvs.get(key.format(arch=arch))

    def need(key: str) -> Any:
        kv = get(key)
        if kv is None:
            name = key.format(arch=arch)
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
            qkv_bias=qkv_bias,
            rope_layout=GGUF_ARCH_ROPE[arch],
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


@dataclass(frozen=True)
class GGUFModel:
    """A GGUF checked against the training model: its hyper-parameters and metadata, and
    its tensors by Meta name, read one at a time (Qwen2.5-Coder-0.5B is 2.5 GB in float32)."""

    path: Path
    arch: str
    hparams: ModelConfig
    kvs: dict[str, KV]
    tensors: dict[str, GGUFTensor]  # in meta_shapes order

    def read(self, meta: str) -> np.ndarray:
        """Tensor ``meta`` dequantized to float32, in its Meta shape."""
        t = self.tensors[meta]
        return dequantize(read_tensor_bytes(self.path, t), t.tensor_type).reshape(numpy_shape(t))


def open_gguf_model(source: str | Path) -> GGUFModel:
    """Read and check a llama or qwen2 GGUF's header; no tensor data is read yet.

    Raises :class:`UnsupportedArchitectureError` for another architecture or a tensor the
    training model has no place for, :class:`TensorShapeError` for a missing tensor or a
    shape the metadata contradicts.
    """
    source = Path(source)
    reader = open_gguf(source)
    kvs = read_kv(reader)
    arch = as_text(kvs.get(Keys.General.ARCHITECTURE))
    if arch not in GGUF_ARCH_ROPE:
        known = ", ".join(repr(a) for a in GGUF_ARCH_ROPE)
        raise UnsupportedArchitectureError(
            f"{source}: architecture is {arch!r}; only {known} models (Llama, Code Llama, "
            "Qwen2, Qwen2.5-Coder) can be imported"
        )
    by_meta = {}
    for t in reader.tensors:
        meta = meta_from_gguf(t.name)
        if meta is None:
            raise UnsupportedArchitectureError(
                f"{source}: tensor {t.name!r} is not part of the {arch} architecture the "
                "training model implements"
            )
        by_meta[meta] = t
    if EMBEDDINGS not in by_meta:
        raise TensorShapeError(f"{source}: tensor {gguf_name(EMBEDDINGS)!r} is missing")
    n_vocab = numpy_shape(by_meta[EMBEDDINGS])[0]
    qkv_bias = any(meta.endswith(".bias") for meta in by_meta)
    hp = hparams_from_gguf(kvs, arch, n_vocab, OUTPUT not in by_meta, qkv_bias, source)
    shapes = meta_shapes(hp)
    for meta, shape in shapes.items():
        if meta not in by_meta:
            raise TensorShapeError(f"{source}: tensor {gguf_name(meta)!r} is missing")
        actual = numpy_shape(by_meta[meta])
        if actual != shape:
            raise TensorShapeError(
                f"{source}: tensor {by_meta[meta].name!r} has shape {list(actual)}, the "
                f"metadata requires {list(shape)}"
            )
    extra = [by_meta[m].name for m in by_meta if m not in shapes]
    if extra:
        raise TensorShapeError(
            f"{source}: tensors {extra[:3]} do not belong to the {hp.n_layers}-layer model "
            "the metadata describes"
        )
    return GGUFModel(source, arch, hp, kvs, {m: by_meta[m] for m in shapes})


def read_gguf_weights(source: str | Path) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """The hyper-parameters and every tensor of a llama or qwen2 GGUF, as float32 arrays
    in Meta's names, held in memory (no checkpoint is written)."""
    model = open_gguf_model(source)
    return model.hparams, {meta: model.read(meta) for meta in model.tensors}


def import_gguf(source: str | Path, output: str | Path, progress: bool = True) -> ImportReport:
    """Write ``source`` (a llama or qwen2 GGUF, quantized or not) as a checkpoint directory."""
    start = time.perf_counter()
    model = open_gguf_model(source)
    source, kvs, hp = model.path, model.kvs, model.hparams
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
        data = model.read(meta)
        bar.update(model.tensors[meta].n_bytes)
        return data

    tokenizer_ref = TokenizerRef("gguf", fim)
    with atomic_directory(output) as tmp:
        total = sum(int(t.n_bytes) for t in model.tensors.values())
        with tqdm(
            total=total, unit="B", unit_scale=True, desc="import", disable=not progress
        ) as bar:
            write_safetensors(tmp / MODEL_FILE, list(meta_shapes(hp).items()), produce)
        writer = GGUFWriter(tmp / tokenizer_ref.file, model.arch)
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
