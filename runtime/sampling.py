"""Choosing the next token from llama.cpp's logits: greedy, or temperature with top-k/top-p."""

from __future__ import annotations

import numpy as np


class Sampler:
    """Picks token ids; seeded per request so sampled alternatives are reproducible."""

    def __init__(
        self, temperature: float = 0.0, top_k: int = 40, top_p: float = 0.95, seed: int = 0
    ):
        self.temperature = temperature
        self.top_k = top_k
        self.top_p = top_p
        self.rng = np.random.default_rng(seed)

    def __call__(self, logits: np.ndarray) -> int:
        if self.temperature <= 0.0:
            return int(np.argmax(logits))
        k = self.top_k if 0 < self.top_k < logits.shape[0] else logits.shape[0]
        top = (
            np.argpartition(logits, -k)[-k:] if k < logits.shape[0] else np.arange(logits.shape[0])
        )
        scaled = logits[top].astype(np.float64) / self.temperature
        order = np.argsort(-scaled)
        top, scaled = top[order], scaled[order]
        probs = np.exp(scaled - scaled[0])
        probs /= probs.sum()
        if 0.0 < self.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), self.top_p) + 1)
            top, probs = top[:keep], probs[:keep] / probs[:keep].sum()
        return int(top[self.rng.choice(len(top), p=probs)])
