"""The tokenizer is configured like Llama's and encodes FIM parts the way Code Llama does."""

from __future__ import annotations

import pytest

from llamacode.training.tokenizer import FIM_PIECES, Tokenizer, TokenizerError

SAMPLES = ["def f(x):\n    return x + 1\n", " x", "  indented", "\tß☺€ 12345", "", " ", "a\x00b"]


def test_fim_pieces_are_control_symbols_user_text_never_produces(tokenizer: Tokenizer) -> None:
    assert tokenizer.fim_ids is not None
    for piece, token_id in zip(FIM_PIECES, tokenizer.fim_ids, strict=True):
        assert tokenizer.sp.id_to_piece(token_id) == piece
        assert tokenizer.sp.is_control(token_id)
    text = "".join(FIM_PIECES) + " <PRE> <SUF> <MID> <EOT>"
    produced = set(tokenizer.encode(text)) | set(tokenizer.encode_nospace(text))
    assert produced.isdisjoint(tokenizer.fim_ids)


def test_llama_settings_byte_fallback_split_digits_whitespace_pieces(tokenizer: Tokenizer) -> None:
    pieces = [tokenizer.sp.id_to_piece(i) for i in tokenizer.encode("x = 2024 ☺")]
    assert "2" in pieces and "0" in pieces and not any(p.startswith("▁2") for p in pieces[1:])
    assert "<0xE2>" in pieces  # a character outside the vocabulary becomes bytes, not <unk>
    assert tokenizer.sp.unk_id() not in tokenizer.encode("☺ ✓ 𝔘")
    indent = [tokenizer.sp.id_to_piece(i) for i in tokenizer.encode("a\n        b")]
    assert any(len(p) >= 4 and set(p) == {"▁"} for p in indent)  # whitespace-only pieces


@pytest.mark.parametrize("text", SAMPLES)
def test_encode_nospace_equals_code_llama_sentinel_trick(tokenizer: Tokenizer, text: str) -> None:
    sentinel = len(tokenizer.encode("☺"))
    assert tokenizer.encode_nospace(text) == tokenizer.encode("☺" + text)[sentinel:]


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trips_and_leading_space_rules(tokenizer: Tokenizer, text: str) -> None:
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.decode_nospace(tokenizer.encode_nospace(text)) == text
    # Prefix ids followed by no-space ids decode to the plain concatenation.
    assert (
        tokenizer.decode(tokenizer.encode("abc") + tokenizer.encode_nospace(text)) == "abc" + text
    )
    if text and not text.startswith(" "):
        first = tokenizer.sp.id_to_piece(tokenizer.encode_nospace(text)[0])
        assert not first.startswith("▁")


def test_missing_tokenizer_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(TokenizerError, match="llamacode tokenizer train"):
        Tokenizer.load(tmp_path / "nope.model")
    (tmp_path / "bad.model").write_bytes(b"not a model")
    with pytest.raises(TokenizerError):
        Tokenizer.load(tmp_path / "bad.model")


def test_gpt2_style_gguf_vocabulary_is_refused_clearly(default_model) -> None:
    with pytest.raises(TokenizerError, match="only llama"):
        Tokenizer.load(default_model)
