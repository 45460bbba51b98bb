"""AdamW with the usual weight-decay groups, and the warm-up + cosine learning rate."""

from __future__ import annotations

import math

import torch
from torch import nn

from llamacode.training.config import OptimConfig


def build_optimizer(
    model: nn.Module, config: OptimConfig, fused: bool = False
) -> torch.optim.AdamW:
    """Weight decay on matrices; none on norms and embeddings (Llama's practice)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim < 2 or "norm" in name or "tok_embeddings" in name:
            no_decay.append(param)
        else:
            decay.append(param)
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
        fused=fused or None,
    )


def learning_rate(step: int, total_steps: int, config: OptimConfig) -> float:
    """LR for update ``step`` (0-based): linear warm-up, then cosine down to peak * ratio."""
    peak = config.lr
    final = peak * config.final_lr_ratio
    if step < config.warmup_steps:
        return peak * (step + 1) / config.warmup_steps
    decay_steps = max(1, total_steps - config.warmup_steps - 1)
    progress = min(1.0, (step - config.warmup_steps) / decay_steps)
    return final + 0.5 * (peak - final) * (1 + math.cos(math.pi * progress))
