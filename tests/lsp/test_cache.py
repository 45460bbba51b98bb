"""Typed-through suggestion cache."""

from __future__ import annotations

from llamacode.lsp.cache import CachedSuggestion, SuggestionCache

URI = "file:///a.py"


def test_typing_the_start_of_a_suggestion_returns_the_rest():
    cache = SuggestionCache()
    cache.put(URI, "x = ", "\n", CachedSuggestion("s1", ("compute(1, 2)",)))
    hit = cache.lookup(URI, "x = comp", "\n")
    assert hit is not None
    assert (hit.suggestion_id, hit.typed, hit.texts) == ("s1", "comp", ("ute(1, 2)",))


def test_exact_repeat_is_a_hit_and_divergence_is_a_miss():
    cache = SuggestionCache()
    cache.put(URI, "x = ", "\n", CachedSuggestion("s1", ("compute(1, 2)",)))
    assert cache.lookup(URI, "x = ", "\n").texts == ("compute(1, 2)",)
    assert cache.lookup(URI, "x = cop", "\n") is None


def test_fully_typed_suggestion_is_a_miss():
    cache = SuggestionCache()
    cache.put(URI, "x = ", "\n", CachedSuggestion("s1", ("ab",)))
    assert cache.lookup(URI, "x = ab", "\n") is None


def test_other_suffix_or_document_is_a_miss():
    cache = SuggestionCache()
    cache.put(URI, "x = ", "\n", CachedSuggestion("s1", ("abc",)))
    assert cache.lookup(URI, "x = a", ")\n") is None
    assert cache.lookup("file:///b.py", "x = a", "\n") is None


def test_alternatives_are_filtered_by_what_was_typed():
    cache = SuggestionCache()
    cache.put(URI, "y = ", "", CachedSuggestion("s2", ("foo()", "bar()", "food")))
    assert cache.lookup(URI, "y = fo", "").texts == ("o()", "od")


def test_capacity_evicts_the_oldest():
    cache = SuggestionCache(capacity=2)
    for i in range(3):
        cache.put(URI, f"v{i} = ", "", CachedSuggestion(f"s{i}", ("1",)))
    assert len(cache) == 2
    assert cache.lookup(URI, "v0 = ", "") is None
    assert cache.lookup(URI, "v2 = ", "") is not None
