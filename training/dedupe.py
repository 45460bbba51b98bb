"""Exact and near-duplicate removal (MinHash with locality-sensitive hashing).

Exact duplicates are found by a hash of the text with whitespace runs collapsed. Near
duplicates by MinHash signatures over word 5-gram shingles: documents whose signatures
collide in any LSH band are compared by their estimated Jaccard similarity, and the
later one goes when it passes the threshold. The first occurrence always stays, so the
result does not depend on anything but the input order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

_WORD = re.compile(r"\w+|[^\w\s]")
_PRIME = (1 << 61) - 1


@dataclass(frozen=True)
class DedupeStats:
    kept: int
    exact_duplicates: int
    near_duplicates: int


def exact_key(text: str) -> bytes:
    """Hash of the text with whitespace runs collapsed (reformatting is not novelty)."""
    return hashlib.blake2b(" ".join(text.split()).encode("utf-8"), digest_size=16).digest()


class MinHasher:
    """MinHash signatures of ``num_perm`` universal hash functions over word shingles."""

    def __init__(self, num_perm: int = 128, shingle: int = 5, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.num_perm = num_perm
        self.shingle = shingle
        self.a = rng.integers(1, _PRIME, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, _PRIME, size=num_perm, dtype=np.uint64)

    def signature(self, text: str) -> np.ndarray:
        words = _WORD.findall(text)
        n = max(1, len(words) - self.shingle + 1)
        shingles = {" ".join(words[i : i + self.shingle]) for i in range(n)}
        hashes = np.fromiter(
            (
                int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
                for s in shingles
            ),
            dtype=np.uint64,
            count=len(shingles),
        ) & np.uint64((1 << 32) - 1)
        # (a * h + b) mod p with h < 2^32 and a, b < 2^61: done in Python ints would be slow;
        # numpy's uint64 wraps, which keeps each row a (different) universal hash.
        values = hashes[:, None] * self.a[None, :] + self.b[None, :]
        return values.min(axis=0)


def jaccard_estimate(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def dedupe(
    texts: Iterable[str],
    *,
    threshold: float = 0.85,
    num_perm: int = 128,
    bands: int = 32,
    shingle: int = 5,
) -> tuple[list[int], DedupeStats]:
    """Indices of the texts to keep, and counts of what was removed."""
    if num_perm % bands:
        raise ValueError(f"num_perm {num_perm} must be a multiple of bands {bands}")
    rows = num_perm // bands
    hasher = MinHasher(num_perm=num_perm, shingle=shingle)
    seen_exact: set[bytes] = set()
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
    signatures: dict[int, np.ndarray] = {}
    kept: list[int] = []
    exact = near = 0
    for index, text in enumerate(texts):
        key = exact_key(text)
        if key in seen_exact:
            exact += 1
            continue
        seen_exact.add(key)
        sig = hasher.signature(text)
        band_keys = [sig[i * rows : (i + 1) * rows].tobytes() for i in range(bands)]
        candidates = {j for band, k in enumerate(band_keys) for j in buckets[band].get(k, ())}
        if any(jaccard_estimate(sig, signatures[j]) >= threshold for j in candidates):
            near += 1
            continue
        signatures[index] = sig
        for band, k in enumerate(band_keys):
            buckets[band].setdefault(k, []).append(index)
        kept.append(index)
    return kept, DedupeStats(len(kept), exact, near)
