"""Which cached tokens a new prompt can keep, and where they move: the plan for KV reuse.

The cache holds the previous request's tokens at positions ``0..len(cached)-1``. The longest
common prefix stays where it is. Past the first difference, runs of at least ``min_chunk``
cached tokens that reappear later in the new prompt (in PSM, the suffix after an edit in the
prefix; the context chunks after an edit before them) are kept too and shifted to their new
positions, as llama-server's ``--cache-reuse`` does. Everything else is evaluated.

A shifted run keeps the keys and values it was computed with, which attended to the old
tokens before it; only its positions change. That is an approximation, which is why the
minimum run length is a setting and 0 turns it off.

This module only plans (pure functions over token ids); runtime.engine carries it out.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

# How many places in the cache are tried for one position in the prompt: repetitive code
# (runs of indentation tokens) can match a short window in hundreds of places.
_MAX_CANDIDATES = 32


@dataclass(frozen=True)
class Chunk:
    """``length`` cached tokens at ``cached`` that the new prompt has at ``prompt``."""

    cached: int
    prompt: int
    length: int

    @property
    def shift(self) -> int:
        return self.prompt - self.cached


@dataclass(frozen=True)
class ReusePlan:
    """The kept prefix, the chunks moved into place (in prompt order), and the prompt's size."""

    prefix: int
    chunks: tuple[Chunk, ...]
    n_prompt: int

    @property
    def reused(self) -> int:
        return self.prefix + sum(c.length for c in self.chunks)

    def gaps(self) -> list[tuple[int, int]]:
        """The prompt ranges ``[start, end)`` to evaluate, in order (the last ends the prompt)."""
        ranges = []
        start = self.prefix
        for c in self.chunks:
            if c.prompt > start:
                ranges.append((start, c.prompt))
            start = c.prompt + c.length
        if start < self.n_prompt:
            ranges.append((start, self.n_prompt))
        return ranges


def plan_reuse(cached: Sequence[int], prompt: Sequence[int], min_chunk: int) -> ReusePlan:
    """Plan which ``cached`` tokens ``prompt`` keeps; ``min_chunk`` 0 keeps the prefix only.

    The prompt's last token is never kept: evaluating it gives the logits of the first new
    token. Chunks keep the order they had in the cache, so moving them never reorders
    cached tokens relative to each other.
    """
    limit = len(prompt) - 1
    if limit <= 0:
        return ReusePlan(0, (), len(prompt))
    prefix = 0
    n = min(len(cached), limit)
    while prefix < n and cached[prefix] == prompt[prefix]:
        prefix += 1
    if min_chunk <= 0 or limit - prefix < min_chunk:
        return ReusePlan(prefix, (), len(prompt))

    index: dict[tuple[int, ...], list[int]] = {}
    for i in range(prefix, len(cached) - min_chunk + 1):
        index.setdefault(tuple(cached[i : i + min_chunk]), []).append(i)

    chunks: list[Chunk] = []
    head = prefix  # the first cached position a later chunk may start at
    shift = 0  # the last chunk's shift: the likeliest place for the next one
    p = prefix
    while p + min_chunk <= limit:
        starts = index.get(tuple(prompt[p : p + min_chunk]))
        best: Chunk | None = None
        if starts:
            candidates = starts[bisect.bisect_left(starts, head) :]
            candidates.sort(key=lambda i: abs(p - i - shift))
            for i in candidates[:_MAX_CANDIDATES]:
                length = _match_length(cached, i, prompt, p, limit)
                if best is None or length > best.length:
                    best = Chunk(i, p, length)
        if best is None:
            p += 1
            continue
        chunks.append(best)
        head = best.cached + best.length
        shift = best.shift
        p += best.length
    return ReusePlan(prefix, tuple(chunks), len(prompt))


def shift_order(chunks: Sequence[Chunk]) -> list[Chunk]:
    """The chunks that move, in an order where none lands on one that has not moved yet.

    A position shift applies to every cell in a position range, so moving a chunk onto the
    old positions of another that still has to move would move both. Chunks moving left go
    first, leftmost first; then chunks moving right, rightmost first.
    """
    left = sorted((c for c in chunks if c.shift < 0), key=lambda c: c.cached)
    right = sorted((c for c in chunks if c.shift > 0), key=lambda c: -c.cached)
    return left + right


def _match_length(cached: Sequence[int], i: int, prompt: Sequence[int], p: int, limit: int) -> int:
    n = 0
    while i + n < len(cached) and p + n < limit and cached[i + n] == prompt[p + n]:
        n += 1
    return n
