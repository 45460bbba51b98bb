"""The Llama tensor set: shapes from the hyper-parameters, and names in three conventions.

Everything inside ``convert`` works in Meta's names (the checkpoint format); Hugging Face
names need the q/k row permutation for an interleaved-RoPE model, GGUF names are a plain
rename to the names of gguf-py's ``TENSOR_NAMES`` table. The q/k rows are stored in the
order the model's ``rope_layout`` rotates, which is also the order of the llama.cpp
architecture that computes that layout (:data:`GGUF_ARCH_ROPE`).
"""

from __future__ import annotations

import re

import numpy as np
from gguf.constants import MODEL_ARCH, MODEL_ARCH_NAMES, MODEL_TENSOR, TENSOR_NAMES

from llamacode.convert.checkpoint_format import ROPE_INTERLEAVED, ROPE_ROTATE_HALF, ModelConfig

# The llama.cpp architectures of the training model, and the RoPE each applies (llama.cpp's
# LLAMA_ROPE_TYPE_NORM for llama, LLAMA_ROPE_TYPE_NEOX for qwen2). Both load optional
# q/k/v biases and an optional output matrix, so the other fields map one to one.
GGUF_ARCH_ROPE = {
    MODEL_ARCH_NAMES[MODEL_ARCH.LLAMA]: ROPE_INTERLEAVED,
    MODEL_ARCH_NAMES[MODEL_ARCH.QWEN2]: ROPE_ROTATE_HALF,
}


def gguf_arch(config: ModelConfig) -> str:
    """The llama.cpp architecture that computes ``config``'s RoPE layout."""
    return next(arch for arch, rope in GGUF_ARCH_ROPE.items() if rope == config.rope_layout)


def meta_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Meta tensor name -> numpy shape, in the order tensors are written."""
    q = config.n_heads * config.head_dim
    kv = config.n_kv_heads * config.head_dim
    dim, hidden = config.dim, config.hidden_dim
    out: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (config.vocab_size, dim)}
    for i in range(config.n_layers):
        p = f"layers.{i}."
        out[p + "attention_norm.weight"] = (dim,)
        for module, rows in (("wq", q), ("wk", kv), ("wv", kv)):
            out[f"{p}attention.{module}.weight"] = (rows, dim)
            if config.qkv_bias:
                out[f"{p}attention.{module}.bias"] = (rows,)
        out[p + "attention.wo.weight"] = (dim, q)
        out[p + "ffn_norm.weight"] = (dim,)
        out[p + "feed_forward.w1.weight"] = (hidden, dim)
        out[p + "feed_forward.w2.weight"] = (dim, hidden)
        out[p + "feed_forward.w3.weight"] = (hidden, dim)
    out["norm.weight"] = (dim,)
    if not config.tie_embeddings:
        out["output.weight"] = (config.vocab_size, dim)
    return out


_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")

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
# The modules that may carry a bias (ModelConfig.qkv_bias); every module has a weight.
_BIASED = ("attention.wq", "attention.wk", "attention.wv")
_HF_BLOCK = "model.layers.{bid}."


def _module(meta: str) -> tuple[MODEL_TENSOR, str, int | None, str]:
    """(GGUF tensor, Hugging Face module, block number or None, "weight" or "bias") of a
    Meta tensor name."""
    module, _, kind = meta.rpartition(".")
    top = _TOP.get(module)
    if top is not None and kind == "weight":
        return top[0], top[1], None, kind
    m = _LAYER.match(module)
    if m is None or m.group(2) not in _BLOCK or kind not in ("weight", "bias"):
        raise KeyError(meta)
    if kind == "bias" and m.group(2) not in _BIASED:
        raise KeyError(meta)
    tensor, hf = _BLOCK[m.group(2)]
    return tensor, _HF_BLOCK + hf, int(m.group(1)), kind


def gguf_name(meta: str) -> str:
    """``layers.3.attention.wq.weight`` -> ``blk.3.attn_q.weight`` (biases alike)."""
    tensor, _, bid, kind = _module(meta)
    return f"{TENSOR_NAMES[tensor].format(bid=bid)}.{kind}"


def hf_name(meta: str) -> str:
    _, hf, bid, kind = _module(meta)
    return f"{hf.format(bid=bid)}.{kind}"


def meta_from_gguf(name: str) -> str | None:
    """The Meta name of a GGUF tensor, or None for a name this converter does not know."""
    base, _, kind = name.rpartition(".")
    block = re.match(r"^[^.]+\.(\d+)\.", name)
    bid = block.group(1) if block else None
    if block is None:
        modules = {m: tensor for m, (tensor, _) in _TOP.items()}
    else:
        modules = {f"layers.{bid}.{m}": tensor for m, (tensor, _) in _BLOCK.items()}
    for module, tensor in modules.items():
        if TENSOR_NAMES[tensor].format(bid=bid) == base:
            meta = f"{module}.{kind}"
            try:
                _module(meta)
            except KeyError:
                return None
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
