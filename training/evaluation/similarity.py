"""Exact match and edit similarity between a generated middle and the true one."""

from __future__ import annotations


def normalize(text: str) -> str:
    """Compare code modulo leading/trailing whitespace and trailing spaces on each line."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def exact_match(generated: str, expected: str) -> bool:
    return normalize(generated) == normalize(expected)


def levenshtein(a: str, b: str) -> int:
    """Character edit distance (insertions, deletions, substitutions)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(generated: str, expected: str) -> float:
    """``1 - distance / longer length`` on normalized text: 1.0 identical, 0.0 nothing shared."""
    a, b = normalize(generated), normalize(expected)
    longest = max(len(a), len(b))
    if longest == 0:
        return 1.0
    return 1.0 - levenshtein(a, b) / longest
