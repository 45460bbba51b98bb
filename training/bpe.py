"""A GGUF's byte-level BPE tokenizer (``tokenizer.ggml.model`` "gpt2"), in Python.

Training examples must hold the ids llama.cpp gives the same text at serving time, and
training must not need llama.cpp to get them. This is llama.cpp's algorithm
(src/llama-vocab.cpp), step for step: special tokens are cut out of the text first, the
rest is split into words by the model's pre-tokenizer (:mod:`pretokenizer`), each word's
UTF-8 bytes are spelled in GPT-2's byte alphabet, and the pair of neighbours with the lowest
merge rank is merged (the leftmost on a tie) until no pair has a rank. A word's ids are
cached, so code, which repeats its words, encodes at a few MB a second.

BOS is never added: Qwen2.5 adds none (``tokenizer.ggml.add_bos_token`` false), and a
caller that wants one prepends :attr:`ByteLevelBPE.bos_id` itself.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gguf import TokenType

from llamacode.runtime.errors import InvalidModelError, ModelNotFoundError
from llamacode.runtime.gguf_file import read_header
from llamacode.runtime.gguf_keys import Keys
from llamacode.training.pretokenizer import PreTokenizer
from llamacode.training.tokenizer import TokenizerError

# Words kept in the cache before it starts over (a large repository has ~10^5 distinct ones).
CACHE_WORDS = 1 << 20


def _gpt2_byte_alphabet() -> str:
    """GPT-2's byte-to-character map as a 256-character string: printable Latin-1 bytes
    stand for themselves, the others for U+0100 onwards, in byte order."""
    printable = {*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)}
    extra = iter(range(0x100, 0x200))
    return "".join(chr(b) if b in printable else chr(next(extra)) for b in range(256))


BYTE_ALPHABET = _gpt2_byte_alphabet()
# Latin-1 text (one character per byte) -> GPT-2's alphabet, and back.
_TO_ALPHABET = str.maketrans({chr(b): c for b, c in enumerate(BYTE_ALPHABET)})
_FROM_ALPHABET = {c: b for b, c in enumerate(BYTE_ALPHABET)}

# Token types that llama.cpp cuts out of the text before BPE (its "special tokens cache"):
# control and unknown ones only when the text is parsed for them, user-defined ones always.
_CONTROL_TYPES = frozenset({TokenType.CONTROL, TokenType.UNKNOWN})
# Texts that llama.cpp takes for end-of-generation and FIM tokens whatever the GGUF's types
# say ("control-looking token" in llama_vocab::impl::load): it makes them control tokens.
# Qwen2.5's vocabulary has "</s>" as an ordinary token, so "</s>" in a text parsed for
# special tokens is one token.
_CONTROL_BY_TEXT = frozenset(
    {
        *("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>"),
        *("<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>"),
        *("_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>"),
        *("<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~["),
        *("<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>"),
        *("▁<PRE>", "<|code_prefix|>", "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>"),
        *("<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>"),
        *("<|suffix|>", "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>"),
        *("<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>", "<|fim_pad|>", "<fim-pad>"),
        *("<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>", "<|repo_name|>", "<fim-repo>"),
        *("<REPO>", "<reponame>", "<|file_sep|>"),
    }
)


def spell_bytes(text: str) -> str:
    """``text``'s UTF-8 bytes in GPT-2's byte alphabet, as the vocabulary stores tokens."""
    return text.encode("utf-8").decode("latin-1").translate(_TO_ALPHABET)


@dataclass(frozen=True)
class _Special:
    text: str
    token_id: int


class ByteLevelBPE:
    """A byte-level BPE vocabulary that encodes text to the ids llama.cpp would give it."""

    def __init__(
        self,
        tokens: list[str],
        token_types: list[int],
        merges: Iterable[str],
        pre: str,
        *,
        bos_id: int | None = None,
        eos_id: int | None = None,
        eot_id: int | None = None,
    ) -> None:
        if len(tokens) != len(token_types) or not tokens:
            raise TokenizerError(
                f"{Keys.Tokenizer.LIST} and {Keys.Tokenizer.TOKEN_TYPE} are not arrays of the "
                "same, non-zero length; convert the model again"
            )
        # llama.cpp names an empty token so that it can never match.
        self._tokens = [text or f"[EMPTY_{i}]" for i, text in enumerate(tokens)]
        self._types = [int(t) for t in token_types]
        self._ids: dict[str, int] = {}
        for i, text in enumerate(self._tokens):
            self._ids.setdefault(text, i)
        self._ranks: dict[tuple[str, str], int] = {}
        for rank, merge in enumerate(merges):
            cut = merge.find(" ", 1)
            if cut > 0:
                self._ranks.setdefault((merge[:cut], merge[cut + 1 :]), rank)
        self._pre = PreTokenizer(pre)
        control = [
            kind in _CONTROL_TYPES or text in _CONTROL_BY_TEXT
            for text, kind in zip(self._tokens, self._types, strict=True)
        ]
        specials = [
            _Special(self._tokens[i], i)
            for i, kind in enumerate(self._types)
            if control[i] or kind == TokenType.USER_DEFINED
        ]
        # Longest first, as llama.cpp tries them.
        specials.sort(key=lambda s: len(s.text.encode("utf-8")), reverse=True)
        self._specials = {True: specials, False: [s for s in specials if not control[s.token_id]]}
        self._special_ids = {s.text: s.token_id for s in reversed(specials)}
        self._cache: dict[str, tuple[int, ...]] = {}
        self._piece_bytes: dict[int, bytes] = {}
        # Bytes no token stands for: llama.cpp drops them from the text, and so does
        # encode (SmolLM2 lacks 21, 0xF1 among them; Qwen2.5 lacks none).
        self.missing_bytes = frozenset(
            b for b, char in enumerate(BYTE_ALPHABET) if self._ids.get(char) is None
        )
        self.bos_id = _checked_id(bos_id, len(tokens))
        self.eos_id = _checked_id(eos_id, len(tokens))
        self.eot_id = _checked_id(eot_id, len(tokens))

    @classmethod
    def from_gguf(cls, path: str | Path) -> ByteLevelBPE:
        """The tokenizer stored in a GGUF's ``tokenizer.ggml.*`` keys."""
        try:
            header = read_header(path)
        except (InvalidModelError, ModelNotFoundError) as exc:
            raise TokenizerError(f"cannot read the tokenizer in {path}: {exc}") from exc
        value = header.metadata.get
        model = value(Keys.Tokenizer.MODEL)
        if model != "gpt2":
            raise TokenizerError(
                f"{path}: {Keys.Tokenizer.MODEL} is {model!r}, not 'gpt2' (byte-level BPE); "
                "sentencepiece vocabularies are read by llamacode.training.tokenizer"
            )
        tokens = value(Keys.Tokenizer.LIST)
        merges = value(Keys.Tokenizer.MERGES)
        types = value(Keys.Tokenizer.TOKEN_TYPE, [int(TokenType.NORMAL)] * len(tokens or ()))
        pre = value(Keys.Tokenizer.PRE)
        if not (_strings(tokens) and _strings(merges) and isinstance(types, list)):
            raise TokenizerError(
                f"{path}: {Keys.Tokenizer.LIST} and {Keys.Tokenizer.MERGES} must be arrays of "
                "strings; convert the model again"
            )
        if not isinstance(pre, str):
            raise TokenizerError(
                f"{path} names no pre-tokenizer ({Keys.Tokenizer.PRE}); llama.cpp would fall "
                "back to a default that degrades the model. Convert it again with a current "
                "llama.cpp convert_hf_to_gguf.py"
            )
        return cls(
            tokens,
            types,
            merges,
            pre,
            bos_id=value(Keys.Tokenizer.BOS_ID),
            eos_id=value(Keys.Tokenizer.EOS_ID),
            eot_id=value(Keys.Tokenizer.EOT_ID),
        )

    @property
    def vocab_size(self) -> int:
        return len(self._tokens)

    @property
    def pre(self) -> str:
        """The pre-tokenizer type (``tokenizer.ggml.pre``)."""
        return self._pre.pre

    def token_id(self, text: str) -> int | None:
        """The id of the one token that stands for ``text`` (a special token by its name,
        ``"<|fim_prefix|>"``, an ordinary one by the text it decodes to, ``" def"``)."""
        special = self._special_ids.get(text)
        if special is not None:
            return special
        token = self._ids.get(spell_bytes(text))
        if token is None or self._types[token] != TokenType.NORMAL:
            return None
        return token

    def encode(self, text: str, *, special: bool = False) -> list[int]:
        """``text``'s token ids, as llama.cpp's ``llama_tokenize`` without BOS.

        ``special=True`` turns control tokens written in the text (``<|fim_prefix|>``) into
        their ids, as ``parse_special``; otherwise they are encoded as text. User-defined
        tokens (Qwen's ``<tool_call>``) become their ids either way, as in llama.cpp.
        ``decode(encode(text)) == text`` unless ``text`` has one of :attr:`missing_bytes`.
        """
        ids: list[int] = []
        for fragment in self._cut_specials(text, self._specials[special]):
            if isinstance(fragment, int):
                ids.append(fragment)
                continue
            for word in self._pre.split(fragment):
                cached = self._cache.get(word)
                if cached is None:
                    if len(self._cache) >= CACHE_WORDS:
                        self._cache.clear()
                    cached = self._cache[word] = self._bpe(spell_bytes(word))
                ids.extend(cached)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """The text of ``ids``; special tokens are written as their names, and bytes that
        are no valid UTF-8 (a character cut between tokens) become U+FFFD."""
        return b"".join(self._bytes(i) for i in ids).decode("utf-8", errors="replace")

    def _bytes(self, token: int) -> bytes:
        piece = self._piece_bytes.get(token)
        if piece is None:
            text = self._tokens[token]
            kind = self._types[token]
            if kind == TokenType.NORMAL:
                piece = b"".join(
                    bytes((_FROM_ALPHABET[c],)) if c in _FROM_ALPHABET else c.encode("utf-8")
                    for c in text
                )
            elif kind == TokenType.BYTE:
                piece = bytes((int(text[3:5], 16),))  # "<0xAB>"
            else:
                piece = text.encode("utf-8")
            self._piece_bytes[token] = piece
        return piece

    def _cut_specials(self, text: str, specials: list[_Special]) -> list[str | int]:
        """``text`` as pieces of text and ids of the special tokens written in it.

        Like llama.cpp's ``tokenizer_st_partition``: each special token in turn, the longest
        first, is cut out of every piece of text left.
        """
        pieces: list[str | int] = [text] if text else []
        for special in specials:
            if not any(isinstance(p, str) and special.text in p for p in pieces):
                continue
            cut: list[str | int] = []
            for piece in pieces:
                if isinstance(piece, int) or special.text not in piece:
                    cut.append(piece)
                    continue
                for n, part in enumerate(piece.split(special.text)):
                    if n:
                        cut.append(special.token_id)
                    if part:
                        cut.append(part)
            pieces = cut
        return pieces

    def _bpe(self, word: str) -> tuple[int, ...]:
        """The ids of one word spelled in the byte alphabet.

        Merges go through a heap of (rank, left position) as in llama.cpp, so a long word
        (a line of dashes, a run of spaces) costs n log n, not n².
        """
        symbols: list[str] = list(word)
        n = len(symbols)
        after = [*range(1, n), -1]
        before = list(range(-1, n - 1))
        ranks = self._ranks
        heap = []
        for i in range(n - 1):
            rank = ranks.get((symbols[i], symbols[i + 1]))
            if rank is not None:
                heap.append((rank, i, i + 1, symbols[i] + symbols[i + 1]))
        heapq.heapify(heap)
        while heap:
            _, left, right, merged = heapq.heappop(heap)
            a, b = symbols[left], symbols[right]
            if not a or not b or a + b != merged:
                continue  # a neighbour has changed since this pair was queued
            symbols[left], symbols[right] = merged, ""
            after[left] = after[right]
            if after[right] >= 0:
                before[after[right]] = left
            for pair_left, pair_right in ((before[left], left), (left, after[left])):
                if pair_left < 0 or pair_right < 0:
                    continue
                pair = (symbols[pair_left], symbols[pair_right])
                rank = ranks.get(pair)
                if rank is not None:
                    heapq.heappush(heap, (rank, pair_left, pair_right, pair[0] + pair[1]))
        out: list[int] = []
        for symbol in symbols:
            if not symbol:
                continue
            token = self._ids.get(symbol)
            if token is not None:
                out.append(token)
                continue
            # A symbol that is no token (a byte of missing_bytes): llama.cpp looks each of
            # its UTF-8 bytes up on its own; only an ASCII byte can be a token alone.
            for byte in symbol.encode("utf-8"):
                token = self._ids.get(chr(byte)) if byte < 0x80 else None
                if token is not None:
                    out.append(token)
        return tuple(out)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _checked_id(token: object, vocab_size: int) -> int | None:
    """A special token id from the GGUF, or None when it names no token (as llama.cpp,
    which ignores an id past the vocabulary)."""
    if isinstance(token, int) and 0 <= token < vocab_size:
        return token
    return None
