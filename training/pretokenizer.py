r"""How llama.cpp cuts text into words before byte-level BPE, per ``tokenizer.ggml.pre``.

llama.cpp (src/llama-vocab.cpp) gives each pre-tokenizer type a list of regexes; each one
splits the pieces the one before produced, and text no match covers stays a piece of its
own. It does not run them the way Python or the Hugging Face tokenizers would
(src/unicode.cpp, ``unicode_regex_split``): every code point is first collapsed to one
byte — ASCII stays itself, other whitespace becomes ``\v``, other letters 0xD2, other
numbers 0xD1, everything else another byte outside every class — and ``\p{L}`` / ``\p{N}``
become ``[\xD2A-Za-z]`` / ``[\xD10-9]``, which ``std::regex`` then runs in the C locale,
where ``\s`` is ``[\t\n\v\f\r ]`` (not U+001C-U+001F, as Python's ``\s`` would have it).
This module does the same with Python's ``re`` on the same collapsed text, so the words are
llama.cpp's, down to what counts as a letter: llama.cpp's tables are Unicode 15.1, and the
letters and numbers added since then are not letters or numbers to it.

What that gives, for Qwen2.5 ("qwen2"): ``x = 1234567`` is ``x``, `` =``, `` ``, then one
word per digit; ``IT'S`` is ``IT``, ``'S`` (contractions in either case: llama.cpp wrote
the ``(?i:'s|...)`` of the Hugging Face regex as ``'[sS]|...``); in ``"\n\n    def"`` the
newlines are one word, and ``\s+(?!\S)`` leaves the last space of the indentation to the
next word: ``"   "``, ``" def"``. SmolLM2 ("smollm") also cuts every digit out first, and
knows lower-case contractions only (``IT'S`` is ``IT``, ``'``, ``S``).

GPT-2's regex runs as a hand-written state machine (``unicode_regex_split_custom_gpt2``)
that also takes a run of whitespace no alternative of the regex matches (``\s+``); with
that alternative the collapsed regex splits as the state machine does.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator

import regex

from llamacode.training.tokenizer import TokenizerError

# llama.cpp's regexes, as src/llama-vocab.cpp writes them.
_QWEN2 = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"

# tokenizer.ggml.pre -> the regexes llama.cpp applies, in order.
PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    "qwen2": (_QWEN2,),
    "smollm": (r"\p{N}", _GPT2 + r"|\s+"),
}

_LETTER = "\xd2"
_NUMBER = "\xd1"
_OTHER = "\xd0"
_SPACE = "\x0b"
_CATEGORIES = {r"\p{L}": _LETTER + "A-Za-z", r"\p{N}": _NUMBER + "0-9"}

# Letters and numbers that Unicode 16.0 and 17.0 added: unassigned in llama.cpp's tables.
_NEWER_THAN_LLAMA_CPP = """
558 58B-58C 88F C5C CDC 1C89-1C8A 208F 209D-209F A7CB-A7CF A7D2 A7D4 A7DA-A7DD A7E2 A7F1
AB6C-AB6D 105C0-105F3 107BB-107BF 10940-10959 10D40-10D65 10D6F-10D85 10EC2-10EC7
10ED9-10EEE 11380-11389 1138B 1138E 11390-113B5 113B7 113D1 113D3 116D0-116E3 11B0A
11BC0-11BE0 11BF0-11BF9 11DB0-11DDB 11DE0-11DE9 11DF1 1246F 12475-1247F 12550-12686
13460-143FA 16100-1611D 16130-16139 16D40-16D6C 16D70-16D79 16EA0-16EB8 16EBB-16ED3
16FF2-16FF6 187F8-187FF 18CD6-18CDA 18CFF 18D09-18D20 18D80-18DF2 18E00-19191 191A0-191D2
1B123-1B128 1B168 1CCF0-1CCF9 1D6A6 1DF1F-1DF24 1DF2B-1DF81 1DF90-1DF96 1DFCD-1DFFF
1E5D0-1E5ED 1E5F0-1E5FA 1E6C0-1E6DE 1E6E0-1E6E2 1E6E4-1E6E5 1E6E7-1E6ED 1E6F0-1E6F4
1E6FE-1E6FF 2B73A-2B73F 2B81E 2CEA2-2CEAD 323B0-33479 3D000-3FC3F
"""


def _ranges(table: str) -> tuple[list[int], list[int]]:
    starts, ends = [], []
    for item in table.split():
        first, _, last = item.partition("-")
        starts.append(int(first, 16))
        ends.append(int(last or first, 16))
    return starts, ends


_NEW_STARTS, _NEW_ENDS = _ranges(_NEWER_THAN_LLAMA_CPP)
_IS_WHITESPACE = regex.compile(r"\p{White_Space}").match
_IS_LETTER = regex.compile(r"\p{L}").match
_IS_NUMBER = regex.compile(r"\p{N}").match


def collapse_char(code: int) -> str:
    """The one character llama.cpp's regexes see for code point ``code``."""
    char = chr(code)
    if code < 0x80:
        return char
    if _IS_WHITESPACE(char):
        return _SPACE
    at = bisect_right(_NEW_STARTS, code) - 1
    if at >= 0 and code <= _NEW_ENDS[at]:
        return _OTHER
    if _IS_LETTER(char):
        return _LETTER
    if _IS_NUMBER(char):
        return _NUMBER
    return _OTHER


class _Collapsed(dict[int, str]):
    """``str.translate`` table that classifies each code point the first time it is seen."""

    def __missing__(self, code: int) -> str:
        value = self[code] = collapse_char(code)
        return value


_COLLAPSE = _Collapsed()


def _compile(expr: str) -> re.Pattern[str]:
    """``expr`` with \\p{L} and \\p{N} collapsed as llama.cpp collapses them, for ``re``."""
    out: list[str] = []
    inside = False
    i = 0
    while i < len(expr):
        char = expr[i]
        escaped = i > 0 and expr[i - 1] == "\\"
        category = next((c for c in _CATEGORIES if expr.startswith(c, i)), None)
        if category is not None:
            body = _CATEGORIES[category]
            out.append(body if inside else f"[{body}]")
            i += len(category)
            continue
        if char == "[" and not escaped:
            inside = True
        elif char == "]" and inside and not escaped:
            inside = False
        out.append(char)
        i += 1
    # re.ASCII: \s and \S are the C locale's [\t\n\v\f\r ], as for std::regex.
    pattern = re.compile("".join(out), re.ASCII)
    if pattern.groups:
        raise ValueError(f"{expr!r} captures groups; findall would return them, not words")
    return pattern


class PreTokenizer:
    """Splits text into the words llama.cpp runs BPE on, for one ``tokenizer.ggml.pre``."""

    def __init__(self, pre: str) -> None:
        expressions = PRE_TOKENIZERS.get(pre)
        if expressions is None:
            known = ", ".join(sorted(PRE_TOKENIZERS))
            raise TokenizerError(
                f"pre-tokenizer {pre!r} (tokenizer.ggml.pre) is not supported; the byte-level "
                f"BPE tokenizer knows {known}. Use a model with one of these, or add its "
                "regexes from llama.cpp's src/llama-vocab.cpp to PRE_TOKENIZERS and prove them "
                "against llama.cpp in tests/training/test_bpe.py."
            )
        self.pre = pre
        self._patterns = [_compile(expr) for expr in expressions]

    def split(self, text: str) -> list[str]:
        """The words of ``text``, in order; joined they are ``text``."""
        if not text:
            return []
        collapsed = text if text.isascii() else text.translate(_COLLAPSE)
        spans = [(0, len(text))]
        *first, last = self._patterns
        for pattern in first:
            spans = [span for start, end in spans for span in _cut(pattern, collapsed, start, end)]
        words: list[str] = []
        for start, end in spans:
            found = last.findall(collapsed, start, end)
            if sum(map(len, found)) != end - start:  # text that no match covers
                found = [collapsed[a:b] for a, b in _cut(last, collapsed, start, end)]
            words += found
        if collapsed is text:
            return words
        # Collapsing keeps one character per code point: cut the text at the same places.
        out = []
        at = 0
        for word in words:
            out.append(text[at : at + len(word)])
            at += len(word)
        return out


def _cut(pattern: re.Pattern[str], text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The matches of ``pattern`` in ``text[start:end]`` and the gaps between them, as spans."""
    at = start
    for match in pattern.finditer(text, start, end):
        first, last = match.span()
        if first > at:
            yield at, first
        yield first, last
        at = last
    if at < end:
        yield at, end
