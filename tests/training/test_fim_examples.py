"""FIM training examples: the serving layout by construction, and lossless."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamacode.runtime.fim import FimMode, fim_layout
from llamacode.training.fim import FimSplit, draw_split, encode_fim, transform_document
from llamacode.training.tokenizer import Tokenizer

# Any text but U+2581 ("▁"), which sentencepiece itself reads as a space (as in Llama).
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(" \t\n\r  def(x):return_12é€☺𝔘\\\"'")),
        st.characters(codec="utf-8", exclude_characters="▁"),
    ),
    max_size=60,
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parts(
    tok: Tokenizer, ids: list[int], split: FimSplit
) -> tuple[list[int], list[int], list[int]]:
    """Prefix, suffix and middle ids located by the special tokens of the layout."""
    fim = tok.fim_tokens()
    assert ids[0] == tok.bos_id and ids[1] == fim.pre and ids[-1] == fim.eot
    body = ids[2:-1]
    n_prefix = len(tok.encode(split.prefix))
    if split.mode is FimMode.PSM:
        i_suf, i_mid = body.index(fim.suf), body.index(fim.mid)
        return body[:i_suf], body[i_suf + 1 : i_mid], body[i_mid + 1 :]
    assert body[0] == fim.suf
    i_mid = body.index(fim.mid)
    tail = body[i_mid + 1 :]
    return tail[:n_prefix], body[1:i_mid], tail[n_prefix:]


@SETTINGS
@given(prefix=TEXT, middle=TEXT, suffix=TEXT, spm=st.booleans())
def test_fim_example_decodes_back_to_the_document(
    tokenizer: Tokenizer, prefix: str, middle: str, suffix: str, spm: bool
) -> None:
    split = FimSplit(prefix, middle, suffix, FimMode.SPM if spm else FimMode.PSM)
    ids = encode_fim(tokenizer, tokenizer.fim_tokens(), split)
    p, s, m = _parts(tokenizer, ids, split)
    assert tokenizer.decode(p) == prefix
    assert tokenizer.decode_nospace(s) == suffix
    assert tokenizer.decode_nospace(m) == middle
    assert tokenizer.decode(p + m + s) == prefix + middle + suffix


@SETTINGS
@given(doc=TEXT, seed=st.integers(0, 2**32))
def test_prompt_part_is_exactly_the_serving_layout(
    tokenizer: Tokenizer, doc: str, seed: int
) -> None:
    split = draw_split(doc, random.Random(seed))
    assert split.prefix + split.middle + split.suffix == doc
    ids = encode_fim(tokenizer, tokenizer.fim_tokens(), split)
    prompt = fim_layout(
        tokenizer.fim_tokens(),
        tokenizer.encode(split.prefix),
        tokenizer.encode_nospace(split.suffix),
        split.mode,
    )
    assert ids == [*prompt, *tokenizer.encode_nospace(split.middle), tokenizer.fim_tokens().eot]
    # What serving sends for this cursor position is a prefix of the training example.
    assert ids[: len(prompt)] == prompt


def test_fim_rate_and_mode_split_follow_the_paper(tokenizer: Tokenizer) -> None:
    rng = random.Random(0)
    fim = tokenizer.fim_tokens()
    n, fim_count = 2000, 0
    for _ in range(n):
        ids = transform_document(tokenizer, "def f():\n    pass\n", rng)
        if ids[1] == fim.pre:
            fim_count += 1
            assert ids[-1] == fim.eot
        else:
            assert ids[0] == tokenizer.bos_id and ids[-1] == tokenizer.eos_id
    assert abs(fim_count / n - 0.9) < 0.03
    modes = [draw_split("abc", rng).mode for _ in range(n)]
    assert abs(modes.count(FimMode.SPM) / n - 0.5) < 0.04


def test_split_points_are_uniform_over_characters() -> None:
    rng = random.Random(1)
    doc = "x" * 100
    starts = [len(draw_split(doc, rng).prefix) for _ in range(4000)]
    ends = [100 - len(draw_split(doc, rng).suffix) for _ in range(4000)]
    # min and max of two uniform draws on [0, 100]: means 100/3 and 200/3.
    assert abs(sum(starts) / len(starts) - 100 / 3) < 2
    assert abs(sum(ends) / len(ends) - 200 / 3) < 2
