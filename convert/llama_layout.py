"""The Llama tensor set: shapes from the hyper-parameters, and names in three conventions.

Everything inside ``convert`` works in Meta's names and layout (the checkpoint format);
Hugging Face names need the q/k row permutation, GGUF names are a plain rename.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LlamaHParams:
    """Mirror of ``training.model.ModelConfig`` (convert must not import torch)."""

    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    hidden_dim: int
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_seq_len: int = 2048
    tie_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def problems(self) -> list[str]:
        """Reasons these numbers cannot describe a Llama model (empty when fine)."""
        out = []
        if min(self.dim, self.n_layers, self.n_heads, self.n_kv_heads, self.vocab_size) <= 0:
            out.append("sizes must be positive")
        elif self.dim % self.n_heads:
            out.append(f"dim {self.dim} is not a multiple of n_heads {self.n_heads}")
        elif self.n_heads % self.n_kv_heads:
            out.append(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        elif self.head_dim % 2:
            out.append(f"head_dim {self.head_dim} is odd; RoPE needs pairs")
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Meta tensor name -> numpy shape, in the order tensors are written."""
        kv = self.n_kv_heads * self.head_dim
        out: dict[str, tuple[int, ...]] = {"tok_embeddings.weight": (self.vocab_size, self.dim)}
        for i in range(self.n_layers):
            p = f"layers.{i}."
            out[p + "attention_norm.weight"] = (self.dim,)
            out[p + "attention.wq.weight"] = (self.n_heads * self.head_dim, self.dim)
            out[p + "attention.wk.weight"] = (kv, self.dim)
            out[p + "attention.wv.weight"] = (kv, self.dim)
            out[p + "attention.wo.weight"] = (self.dim, self.n_heads * self.head_dim)
            out[p + "ffn_norm.weight"] = (self.dim,)
            out[p + "feed_forward.w1.weight"] = (self.hidden_dim, self.dim)
            out[p + "feed_forward.w2.weight"] = (self.dim, self.hidden_dim)
            out[p + "feed_forward.w3.weight"] = (self.hidden_dim, self.dim)
        out["norm.weight"] = (self.dim,)
        if not self.tie_embeddings:
            out["output.weight"] = (self.vocab_size, self.dim)
        return out


_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")

# Meta suffix -> (GGUF suffix, Hugging Face suffix) inside a block.
_BLOCK = {
    "attention_norm.weight": ("attn_norm.weight", "input_layernorm.weight"),
    "attention.wq.weight": ("attn_q.weight", "self_attn.q_proj.weight"),
    "attention.wk.weight": ("attn_k.weight", "self_attn.k_proj.weight"),
    "attention.wv.weight": ("attn_v.weight", "self_attn.v_proj.weight"),
    "attention.wo.weight": ("attn_output.weight", "self_attn.o_proj.weight"),
    "ffn_norm.weight": ("ffn_norm.weight", "post_attention_layernorm.weight"),
    "feed_forward.w1.weight": ("ffn_gate.weight", "mlp.gate_proj.weight"),
    "feed_forward.w2.weight": ("ffn_down.weight", "mlp.down_proj.weight"),
    "feed_forward.w3.weight": ("ffn_up.weight", "mlp.up_proj.weight"),
}
_TOP = {
    "tok_embeddings.weight": ("token_embd.weight", "model.embed_tokens.weight"),
    "norm.weight": ("output_norm.weight", "model.norm.weight"),
    "output.weight": ("output.weight", "lm_head.weight"),
}


def _rename(meta: str, which: int, block_prefix: tuple[str, str]) -> str:
    if meta in _TOP:
        return _TOP[meta][which]
    m = _LAYER.match(meta)
    if m is None or m.group(2) not in _BLOCK:
        raise KeyError(meta)
    return f"{block_prefix[which]}{m.group(1)}.{_BLOCK[m.group(2)][which]}"


def gguf_name(meta: str) -> str:
    return _rename(meta, 0, ("blk.", "model.layers."))


def hf_name(meta: str) -> str:
    return _rename(meta, 1, ("blk.", "model.layers."))


def meta_from_gguf(name: str) -> str | None:
    """The Meta name of a GGUF llama tensor, or None for a name this converter does not know."""
    for meta, (g, _) in _TOP.items():
        if name == g:
            return meta
    m = re.match(r"^blk\.(\d+)\.(.+)$", name)
    if m:
        for meta_suffix, (g, _) in _BLOCK.items():
            if m.group(2) == g:
                return f"layers.{m.group(1)}.{meta_suffix}"
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
