"""Typed-through suggestion cache: answer without the model while the user types what we showed.

An entry is keyed by a hash of the context it was made for (the end of the text before
the cursor and the start of the text after it). When a request comes in, the cache tries
"the user typed the last k characters" for each k up to the longest cached suggestion:
if the context without those k characters has an entry, and the entry's suggestion starts
with them, the rest of the suggestion is the answer.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

TAIL_CHARS = 256
HEAD_CHARS = 256


@dataclass(frozen=True)
class CachedSuggestion:
    """Suggestions made for one context, best first, and the id they were shown under."""

    suggestion_id: str
    texts: tuple[str, ...]


@dataclass(frozen=True)
class CacheHit:
    """The rest of each cached suggestion after the characters the user already typed."""

    suggestion_id: str
    typed: str
    texts: tuple[str, ...]


def context_key(uri: str, prefix: str, suffix: str) -> bytes:
    """A hash of what the suggestion depends on near the cursor."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (uri, prefix[-TAIL_CHARS:], suffix[:HEAD_CHARS]):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.digest()


class SuggestionCache:
    """An LRU of suggestions by context hash."""

    def __init__(self, capacity: int = 128) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, CachedSuggestion] = OrderedDict()
        self._longest = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, uri: str, prefix: str, suffix: str, entry: CachedSuggestion) -> None:
        """Remember suggestions for the context ``prefix``|cursor|``suffix``."""
        texts = tuple(t for t in entry.texts if t)
        if not texts:
            return
        key = context_key(uri, prefix, suffix)
        self._entries[key] = CachedSuggestion(entry.suggestion_id, texts)
        self._entries.move_to_end(key)
        self._longest = max(self._longest, max(len(t) for t in texts))
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def lookup(self, uri: str, prefix: str, suffix: str) -> CacheHit | None:
        """The rest of a suggestion whose beginning the user typed (or an exact repeat)."""
        if not self._entries:
            return None
        for typed_len in range(min(self._longest, len(prefix)) + 1):
            base = prefix[: len(prefix) - typed_len] if typed_len else prefix
            entry = self._entries.get(context_key(uri, base, suffix))
            if entry is None:
                continue
            typed = prefix[len(base) :]
            rests = tuple(t[len(typed) :] for t in entry.texts if t.startswith(typed))
            rests = tuple(r for r in rests if r.strip())
            if rests:
                self._entries.move_to_end(context_key(uri, base, suffix))
                return CacheHit(entry.suggestion_id, typed, rests)
        return None

    def clear(self) -> None:
        """Forget everything (the model changed)."""
        self._entries.clear()
        self._longest = 0
