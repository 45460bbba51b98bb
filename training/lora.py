"""Low-rank adapters (LoRA, Hu et al. 2021) on a frozen Transformer's projections.

``W x + (alpha / r) * B (A x)``: A [r, in] starts as PEFT's Kaiming-uniform draw and B
[out, r] at zero, so the adapted model starts exactly as the base. The orientation and
the scale are PEFT's and llama.cpp's, so A and B export to a GGUF LoRA adapter as they are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from llamacode.convert.llama_layout import gguf_name

# The attention and MLP projections of each block, by their module names.
LORA_TARGETS = (
    "attention.wq",
    "attention.wk",
    "attention.wv",
    "attention.wo",
    "feed_forward.w1",
    "feed_forward.w2",
    "feed_forward.w3",
)


@dataclass(frozen=True)
class LoraConfig:
    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = LORA_TARGETS

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise ValueError(f"LoRA rank must be positive, got {self.rank}")

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


class LoraLinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        base.requires_grad_(False)
        self.scale = alpha / rank
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = (x.to(self.lora_a.dtype) @ self.lora_a.T) @ self.lora_b.T
        return self.base(x) + (update * self.scale).to(x.dtype)


def add_lora(model: nn.Module, config: LoraConfig) -> dict[str, LoraLinear]:
    """Freeze ``model`` and wrap its target projections; returns them by module name."""
    model.requires_grad_(False)
    wrapped: dict[str, LoraLinear] = {}
    for name, module in list(model.named_modules()):
        if not any(name.endswith(t) for t in config.targets) or not isinstance(module, nn.Linear):
            continue
        parent_name, _, child = name.rpartition(".")
        lora = LoraLinear(module, config.rank, config.alpha)
        setattr(model.get_submodule(parent_name), child, lora)
        wrapped[name] = lora
    if not wrapped:
        raise ValueError(f"the model has none of the LoRA targets {', '.join(config.targets)}")
    return wrapped


def lora_state(wrapped: dict[str, LoraLinear]) -> dict[str, torch.Tensor]:
    """The trainable tensors, ``<module>.lora_a`` / ``<module>.lora_b`` (for checkpoints)."""
    state = {}
    for name, lora in wrapped.items():
        state[f"{name}.lora_a"] = lora.lora_a.detach().clone()
        state[f"{name}.lora_b"] = lora.lora_b.detach().clone()
    return state


def load_lora_state(wrapped: dict[str, LoraLinear], state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, lora in wrapped.items():
            lora.lora_a.copy_(state[f"{name}.lora_a"])
            lora.lora_b.copy_(state[f"{name}.lora_b"])


def gguf_pairs(wrapped: dict[str, LoraLinear]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A and B of each adapted projection, keyed by the base tensor's GGUF name."""
    return {
        gguf_name(f"{name}.weight"): (
            lora.lora_a.detach().float().numpy(),
            lora.lora_b.detach().float().numpy(),
        )
        for name, lora in wrapped.items()
    }
