"""Packing a token stream into fixed-length sequences, and the order they are read in.

The stream (documents back to back, each starting with BOS) is cut into windows of
``seq_len + 1`` tokens overlapping by one, so every token is a target exactly once. Which
windows make up step ``s`` is a pure function of (seed, s): no sampler state to save,
and resuming at step ``s`` reads exactly what an uninterrupted run would have read.
"""

from __future__ import annotations

import numpy as np
import torch

from llamacode.training.shards import DataError, TokenStore

IGNORE_INDEX = -100


class PackedWindows:
    """Fixed-length (inputs, targets) pairs over one split's tokens."""

    def __init__(self, store: TokenStore, seq_len: int) -> None:
        self.store = store
        self.seq_len = seq_len
        self.count = (len(store) - 1) // seq_len
        if self.count < 1:
            raise DataError(
                f"only {len(store)} tokens: not one sequence of {seq_len}; "
                "add data or lower train.seq_len"
            )

    def __len__(self) -> int:
        return self.count

    def get(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = np.empty((len(indices), self.seq_len), dtype=np.int64)
        targets = np.empty_like(inputs)
        for row, index in enumerate(indices):
            tokens, mask = self.store.read(int(index) * self.seq_len, self.seq_len + 1)
            inputs[row] = tokens[:-1]
            targets[row] = tokens[1:]
            if mask is not None:
                targets[row][mask[1:] == 0] = IGNORE_INDEX
        return torch.from_numpy(inputs), torch.from_numpy(targets)


class WindowOrder:
    """A fresh permutation of all windows per epoch, seeded by (seed, epoch)."""

    def __init__(self, count: int, seed: int) -> None:
        self.count = count
        self.seed = seed
        self._cache: dict[int, np.ndarray] = {}

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            self._cache = {epoch: np.random.default_rng([self.seed, epoch]).permutation(self.count)}
        return self._cache[epoch]

    def batch(self, step: int, size: int) -> np.ndarray:
        """The ``size`` window indices of global batch ``step``."""
        positions = np.arange(step * size, (step + 1) * size)
        out = np.empty(size, dtype=np.int64)
        for epoch in np.unique(positions // self.count):
            sel = positions // self.count == epoch
            out[sel] = self._perm(int(epoch))[positions[sel] % self.count]
        return out
