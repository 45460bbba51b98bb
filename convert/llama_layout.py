"""The Llama tensor set: shapes from the hyper-parameters, and names in three conventions.

Everything inside ``convert`` works in Meta's names and layout (the checkpoint format);
Hugging Face names need the q/k row permutation, GGUF names are a plain rename to the
names of gguf-py's ``TENSOR_NAMES`` table.
"""

from __future__ import annotations

import re

import numpy as np
from gguf.constants import MODEL_TENSOR, TENSOR_NAMES

from llamacode.convert.checkpoint_format import ModelConfig


def meta_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Meta tensor name -> numpy shape, in the order tensors are written."""
    q = config.n_heads * config.head_dim
    kv = config.n_kv_heads * config.head_dim
    dim, hidden = config.dim, config.hidden_dim
    out: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (config.vocab_size, dim)}
    for i in range(config.n_layers):
        p = f"layers.{i}."
        out[p + "attention_norm.weight"] = (dim,)
        out[p + "attention.wq.weight"] = (q, dim)
        out[p + "attention.wk.weight"] = (kv, dim)
        out[p + "attention.wv.weight"] = (kv, dim)
        out[p + "attention.wo.weight"] = (dim, q)
        out[p + "ffn_norm.weight"] = (dim,)
        out[p + "feed_forward.w1.weight"] = (hidden, dim)
        out[p + "feed_forward.w2.weight"] = (dim, hidden)
        out[p + "feed_forward.w3.weight"] = (hidden, dim)
    out["norm.weight"] = (dim,)
    if not config.tie_embeddings:
        out["output.weight"] = (config.vocab_size, dim)
    return out


_LAYER = re.compile(r"^layers\.(\d+)\.(.+)\.weight$")

# Meta module -> (GGUF tensor, Hugging Face module) inside block N ...
_BLOCK = {
    "attention_norm": (MODEL_TENSOR.ATTN_NORM, "input_layernorm"),
    "attention.wq": (MODEL_TENSOR.ATTN_Q, "self_attn.q_proj"),
    "attention.wk": (MODEL_TENSOR.ATTN_K, "self_attn.k_proj"),
    "attention.wv": (MODEL_TENSOR.ATTN_V, "self_attn.v_proj"),
    "attention.wo": (MODEL_TENSOR.ATTN_OUT, "self_attn.o_proj"),
    "ffn_norm": (MODEL_TENSOR.FFN_NORM, "post_attention_layernorm"),
    "feed_forward.w1": (MODEL_TENSOR.FFN_GATE, "mlp.gate_proj"),
    "feed_forward.w2": (MODEL_TENSOR.FFN_DOWN, "mlp.down_proj"),
    "feed_forward.w3": (MODEL_TENSOR.FFN_UP, "mlp.up_proj"),
}
# ... and outside the blocks.
_TOP = {
    "tok_embeddings": (MODEL_TENSOR.TOKEN_EMBD, "model.embed_tokens"),
    "norm": (MODEL_TENSOR.OUTPUT_NORM, "model.norm"),
    "output": (MODEL_TENSOR.OUTPUT, "lm_head"),
}
_HF_BLOCK = "model.layers.{bid}."


def _module(meta: str) -> tuple[MODEL_TENSOR, str, int | None]:
    """(GGUF tensor, Hugging Face module, block number or None) of a Meta weight name."""
    top = _TOP.get(meta.removesuffix(".weight"))
    if top is not None and meta.endswith(".weight"):
        return top[0], top[1], None
    m = _LAYER.match(meta)
    if m is None or m.group(2) not in _BLOCK:
        raise KeyError(meta)
    tensor, hf = _BLOCK[m.group(2)]
    return tensor, _HF_BLOCK + hf, int(m.group(1))


def gguf_name(meta: str) -> str:
    tensor, _, bid = _module(meta)
    return TENSOR_NAMES[tensor].format(bid=bid) + ".weight"


def hf_name(meta: str) -> str:
    _, hf, bid = _module(meta)
    return hf.format(bid=bid) + ".weight"


def meta_from_gguf(name: str) -> str | None:
    """The Meta name of a GGUF llama tensor, or None for a name this converter does not know."""
    block = re.match(r"^[^.]+\.(\d+)\.", name)
    if block is None:
        modules = {f"{m}.weight": tensor for m, (tensor, _) in _TOP.items()}
    else:
        prefix = f"layers.{block.group(1)}."
        modules = {f"{prefix}{m}.weight": tensor for m, (tensor, _) in _BLOCK.items()}
    bid = block.group(1) if block else None
    for meta, tensor in modules.items():
        if TENSOR_NAMES[tensor].format(bid=bid) + ".weight" == name:
            return meta
    return None


def hf_to_meta_rows(weights: np.ndarray, n_heads: int) -> np.ndarray:
    """Hugging Face q/k rows (rotate_half RoPE) -> Meta's interleaved rows.

    For each head, HF keeps the first halves of all pairs, then the second halves;
    Meta interleaves them. Same as llama.cpp's ``LlamaModel.permute``.
    """
    rows, cols = weights.shape
    return (
        weights.reshape(n_heads, 2, rows // n_heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)
    )


def meta_to_hf_rows(weights: np.ndarray, n_heads: int) -> np.ndarray:
    """Inverse of :func:`hf_to_meta_rows`."""
    rows, cols = weights.shape
    return (
        weights.reshape(n_heads, rows // n_heads // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)
    )
