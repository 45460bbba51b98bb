"""The Llama 2 / Code Llama and Qwen2 transformer in PyTorch, in Meta's native names.

State-dict keys are exactly those of the checkpoint format (``tok_embeddings.weight``,
``layers.{i}.attention.wq.weight``, ...). RoPE follows ``ModelConfig.rope_layout``:
interleaved pairs (2i, 2i+1) as Meta's reference and llama.cpp's llama tensors, or
rotate_half pairs (i, i + head_dim/2) as Hugging Face and llama.cpp's qwen2 tensors; either
way a checkpoint exports without any q/k permutation. Qwen2 adds biases to the q/k/v
projections (``qkv_bias``). Attention goes through ``scaled_dot_product_attention`` (flash
kernels on GPU).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from llamacode.convert.checkpoint_format import ROPE_INTERLEAVED, ModelConfig


class RMSNorm(nn.Module):
    """x * rsqrt(mean(x^2) + eps) * w, computed in float32 whatever the input dtype."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        normed = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def rope_cos_sin(
    seq_len: int, head_dim: int, theta: float, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables [seq_len, head_dim/2] in float32.

    Computed per call (cheap) rather than kept as buffers, so casting the module to bf16
    never degrades the angles.
    """
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)
    )
    angles = torch.outer(torch.arange(seq_len, device=device, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, layout: str = ROPE_INTERLEAVED
) -> torch.Tensor:
    """Rotate the pairs of x [B, T, H, head_dim] that ``layout`` names: interleaved
    (2i, 2i+1) or rotate_half (i, i + head_dim/2); pair i turns by angle i."""
    xf = x.float()
    if layout == ROPE_INTERLEAVED:
        x0, x1 = xf.unflatten(-1, (-1, 2)).unbind(-1)
    else:
        x0, x1 = xf.chunk(2, dim=-1)
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    r0, r1 = x0 * c - x1 * s, x0 * s + x1 * c
    if layout == ROPE_INTERLEAVED:
        return torch.stack((r0, r1), dim=-1).flatten(-2).type_as(x)
    return torch.cat((r0, r1), dim=-1).type_as(x)


class Attention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.n_kv_heads = config.n_kv_heads
        self.head_dim = config.head_dim
        self.rope_layout = config.rope_layout
        bias = config.qkv_bias
        self.wq = nn.Linear(config.dim, config.n_heads * self.head_dim, bias=bias)
        self.wk = nn.Linear(config.dim, config.n_kv_heads * self.head_dim, bias=bias)
        self.wv = nn.Linear(config.dim, config.n_kv_heads * self.head_dim, bias=bias)
        self.wo = nn.Linear(config.n_heads * self.head_dim, config.dim, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_heads, self.head_dim)
        k = self.wk(x).view(b, t, self.n_kv_heads, self.head_dim)
        v = self.wv(x).view(b, t, self.n_kv_heads, self.head_dim)
        q = apply_rope(q, cos, sin, self.rope_layout)
        k = apply_rope(k, cos, sin, self.rope_layout)
        q, k, v = (y.transpose(1, 2) for y in (q, k, v))
        if self.n_kv_heads != self.n_heads:
            # Query head h reads KV head h // n_rep, as in Meta's repeat_kv and llama.cpp.
            n_rep = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(n_rep, dim=1)
            v = v.repeat_interleave(n_rep, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.wo(out.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.dim, config.hidden_dim, bias=False)
        self.w2 = nn.Linear(config.hidden_dim, config.dim, bias=False)
        self.w3 = nn.Linear(config.dim, config.hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.attention = Attention(config)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.feed_forward = FeedForward(config)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), cos, sin)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    """Decoder-only Llama: tokens [B, T] -> logits [B, T, vocab].

    ``activation_checkpointing`` recomputes each block in the backward pass (less memory,
    about a third more compute); it only acts in training mode.
    """

    def __init__(self, config: ModelConfig, activation_checkpointing: bool = False) -> None:
        super().__init__()
        self.config = config
        self.activation_checkpointing = activation_checkpointing
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.layers = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        # Tied models have no output module, so their state dict has no output.weight.
        self.output = (
            None if config.tie_embeddings else nn.Linear(config.dim, config.vocab_size, bias=False)
        )
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        """Normal(0, std) weights, zero biases; residual projections scaled by
        1/sqrt(2 n_layers)."""
        residual_std = std / math.sqrt(2 * self.config.n_layers)
        for name, param in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(param)
            elif name.endswith(".bias"):
                nn.init.zeros_(param)
            elif name.endswith(("attention.wo.weight", "feed_forward.w2.weight")):
                nn.init.normal_(param, mean=0.0, std=residual_std)
            else:
                nn.init.normal_(param, mean=0.0, std=std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.project(self.hidden_states(tokens))

    def hidden_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """The final normed hidden states [B, T, dim], before the output projection.

        Fine-tuning on a few target positions projects only those (:meth:`project`): over a
        150k vocabulary the projection is a large part of a step.
        """
        _, t = tokens.shape
        if t > self.config.max_seq_len:
            raise ValueError(
                f"sequence of {t} tokens exceeds max_seq_len {self.config.max_seq_len}"
            )
        cos, sin = rope_cos_sin(t, self.config.head_dim, self.config.rope_theta, tokens.device)
        h = self.tok_embeddings(tokens)
        for layer in self.layers:
            if self.activation_checkpointing and self.training:
                h = checkpoint(layer, h, cos, sin, use_reentrant=False)
            else:
                h = layer(h, cos, sin)
        return self.norm(h)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits from hidden states (the tied embedding table or the output matrix)."""
        if self.output is None:
            return F.linear(hidden, self.tok_embeddings.weight)
        return self.output(hidden)

    def num_params(self, exclude_embeddings: bool = False) -> int:
        """Parameter count; ``exclude_embeddings`` drops the input embedding table.

        A tied table is also the output projection, so it is kept when tied.
        """
        total = sum(p.numel() for p in self.parameters())
        if exclude_embeddings and not self.config.tie_embeddings:
            total -= self.tok_embeddings.weight.numel()
        return total

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token (forward + backward), for MFU.

        6 N for the weight matmuls (N excludes the embedding lookup, keeps the output
        projection) plus 12 * n_layers * dim * seq_len for the attention scores and
        weighted sum (PaLM, appendix B; causal masking is not discounted).
        """
        c = self.config
        n_matmul = self.num_params(exclude_embeddings=True)
        return 6 * n_matmul + 12 * c.n_layers * c.dim * seq_len
