"""Planning KV reuse: the common prefix, then cached chunks moved to where the new prompt has them."""

from __future__ import annotations

import random

from llamacode.runtime.kv_reuse import Chunk, ReusePlan, plan_reuse, shift_order

PRE, SUF, MID = 1000, 1001, 1002


def psm(prefix: list[int], suffix: list[int]) -> list[int]:
    return [PRE, *prefix, SUF, *suffix, MID]


def covered(plan: ReusePlan) -> list[int]:
    """Every prompt position once, from the prefix, the chunks and the gaps (fails on overlap)."""
    spans = [(0, plan.prefix)] + [(c.prompt, c.prompt + c.length) for c in plan.chunks]
    spans += plan.gaps()
    positions = sorted(p for start, end in spans for p in range(start, end))
    assert positions == sorted(set(positions))
    return positions


def test_inserting_in_the_prefix_keeps_the_suffix_as_one_shifted_chunk():
    suffix = list(range(100, 140))
    cached = [*psm([10, 11, 12], suffix), 7, 8, 9]  # the previous prompt, its generation
    prompt = psm([10, 11, 55, 12], suffix)
    plan = plan_reuse(cached, prompt, min_chunk=8)
    assert plan.prefix == 3
    assert plan.chunks == (Chunk(cached=3, prompt=4, length=len(suffix) + 2),)
    # Only the inserted token and the last one (whose logits start generation) are evaluated.
    assert plan.gaps() == [(3, 4), (len(prompt) - 1, len(prompt))]
    assert plan.reused == len(prompt) - 2


def test_deleting_before_a_chunk_shifts_it_left():
    body = list(range(200, 260))
    cached = [PRE, 1, 2, 3, 4, *body, MID]
    prompt = [PRE, 1, *body, MID]
    plan = plan_reuse(cached, prompt, min_chunk=16)
    assert plan.prefix == 2
    assert plan.chunks == (Chunk(cached=5, prompt=2, length=len(body)),)
    assert plan.chunks[0].shift == -3
    assert plan.gaps() == [(len(prompt) - 1, len(prompt))]


def test_min_chunk_zero_keeps_only_the_common_prefix():
    suffix = list(range(100, 140))
    plan = plan_reuse(psm([10, 11], suffix), psm([10, 55, 11], suffix), min_chunk=0)
    assert plan.prefix == 2 and plan.chunks == ()
    assert plan.gaps() == [(2, len(suffix) + 6)]


def test_runs_shorter_than_min_chunk_are_evaluated_again():
    cached = psm([10, 11], [20, 21, 22, 23, 24])
    prompt = psm([10, 55, 11], [20, 21, 22, 23, 24])
    assert plan_reuse(cached, prompt, min_chunk=8).chunks == ()
    assert plan_reuse(cached, prompt, min_chunk=4).chunks == (Chunk(2, 3, 7),)


def test_the_last_prompt_token_is_always_evaluated():
    ids = psm([10, 11, 12], list(range(100, 140)))
    plan = plan_reuse(ids, ids, min_chunk=4)
    assert plan.prefix == len(ids) - 1
    assert plan.gaps() == [(len(ids) - 1, len(ids))]
    assert plan_reuse([], [5], min_chunk=4).gaps() == [(0, 1)]


def test_chunks_keep_their_cached_order():
    a, b = list(range(100, 120)), list(range(200, 220))
    plan = plan_reuse([PRE, *a, *b, MID], [PRE, *b, *a, MID], min_chunk=8)
    # Either block could be kept, not both: that would reorder cached tokens.
    assert len(plan.chunks) == 1 and plan.chunks[0].length == 20


def test_repetitive_code_still_finds_the_chunk_where_it_moved():
    indent = [7] * 300  # one token repeated: a window of it matches everywhere
    cached = [*psm([10, *indent[:150], 11], [12, *indent[150:], 13]), 14]
    prompt = psm([10, *indent[:150], 99, 11], [12, *indent[150:], 13])
    plan = plan_reuse(cached, prompt, min_chunk=16)
    assert plan.prefix == 152
    assert plan.reused == len(prompt) - 2


def test_plans_cover_every_prompt_position_exactly_once():
    rng = random.Random(0)
    for _ in range(300):
        cached = [rng.randrange(30) for _ in range(rng.randrange(1, 120))]
        prompt = _edited(rng, cached)
        plan = plan_reuse(cached, prompt, min_chunk=rng.choice([1, 2, 4, 8]))
        assert covered(plan) == list(range(len(prompt)))
        for c in plan.chunks:
            assert cached[c.cached : c.cached + c.length] == prompt[c.prompt : c.prompt + c.length]
            assert c.prompt + c.length < len(prompt)
        starts = [c.cached for c in plan.chunks]
        assert starts == sorted(starts)
        assert all(c.cached >= plan.prefix for c in plan.chunks)


def test_shift_order_never_moves_a_chunk_onto_one_still_waiting():
    rng = random.Random(1)
    moved_any = 0
    for _ in range(300):
        cached = [rng.randrange(12) for _ in range(rng.randrange(2, 150))]
        plan = plan_reuse(cached, _edited(rng, cached), min_chunk=rng.choice([2, 3, 5]))
        # Cells by position, as the side sequence holds them: each belongs to one chunk.
        cells = {c.cached + i: n for n, c in enumerate(plan.chunks) for i in range(c.length)}
        order = shift_order(plan.chunks)
        assert sorted(order, key=lambda c: c.cached) == [c for c in plan.chunks if c.shift]
        for c in order:
            n = plan.chunks.index(c)
            source = range(c.cached, c.cached + c.length)
            # A shift moves every cell in the range: only this chunk's may be there.
            assert all(cells[p] == n for p in source if p in cells)
            for p in source:
                del cells[p]
            target = range(c.prompt, c.prompt + c.length)
            assert not any(p in cells for p in target)
            cells.update({p: n for p in target})
            moved_any += 1
        expected = {c.prompt + i: n for n, c in enumerate(plan.chunks) for i in range(c.length)}
        assert cells == expected
    assert moved_any > 100


def _edited(rng: random.Random, ids: list[int]) -> list[int]:
    """``ids`` after a few random insertions, deletions and replacements, plus a new end."""
    out = list(ids)
    for _ in range(rng.randrange(1, 5)):
        at = rng.randrange(len(out) + 1)
        kind = rng.randrange(3)
        if kind == 0:
            out[at:at] = [rng.randrange(30) for _ in range(rng.randrange(1, 6))]
        elif kind == 1:
            del out[at : at + rng.randrange(1, 6)]
        elif at < len(out):
            out[at] = rng.randrange(30)
    return [*out, rng.randrange(30)]
