"""Tokenizers as GGUF ``tokenizer.*`` metadata: sentencepiece, Hugging Face BPE, or a GGUF's.

Sentencepiece piece types come from the model protobuf itself (the python bindings cannot
tell user-defined pieces from normal ones, and protobuf is not a dependency): a small
reader of the wire format is enough for the three fields used.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gguf import GGUFValueType, TokenType

from llamacode.convert.errors import MissingTokenizerError
from llamacode.convert.gguf_kv import (
    KV,
    kv_array,
    kv_bool,
    kv_string,
    kv_uint32,
    open_gguf,
    read_kv,
    token_texts,
)
from llamacode.runtime.fim import FimTokens, detect_fim
from llamacode.runtime.gguf_keys import TOKENIZER_PREFIX, Keys

# llama.cpp pre-tokenizer names for the Hugging Face pre-tokenizer configurations we
# recognise exactly. Anything else must be named by the user (--bpe-pre).
_LLAMA3_REGEX = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+"
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)


@dataclass(frozen=True)
class SentencePiece:
    piece: str
    score: float
    type: int  # sentencepiece's enum: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte


@dataclass(frozen=True)
class SentencePieceModel:
    pieces: list[SentencePiece]
    add_dummy_prefix: bool


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message, in order."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def parse_sentencepiece(path: str | os.PathLike[str]) -> SentencePieceModel:
    """Pieces, scores and types of a sentencepiece ``.model`` file."""
    path = Path(path)
    try:
        buf = path.read_bytes()
        pieces: list[SentencePiece] = []
        add_dummy_prefix = True
        for number, wire, value in _fields(buf):
            if number == 1 and wire == 2:
                piece, score, kind = "", 0.0, 1
                for n, w, v in _fields(value):
                    if n == 1 and w == 2:
                        piece = v.decode("utf-8")
                    elif n == 2 and w == 5:
                        (score,) = struct.unpack("<f", v)
                    elif n == 3 and w == 0:
                        kind = v
                pieces.append(SentencePiece(piece, score, kind))
            elif number == 3 and wire == 2:
                for n, w, v in _fields(value):
                    if n == 3 and w == 0:
                        add_dummy_prefix = bool(v)
    except (OSError, ValueError, IndexError, UnicodeDecodeError, struct.error) as exc:
        raise MissingTokenizerError(f"{path}: not a readable sentencepiece model ({exc})") from exc
    if not pieces:
        raise MissingTokenizerError(f"{path}: sentencepiece model holds no pieces")
    return SentencePieceModel(pieces, add_dummy_prefix)


@dataclass
class Vocab:
    """A tokenizer ready for GGUF: its ``tokenizer.*`` keys plus the token texts."""

    kvs: dict[str, KV]
    tokens: list[str]
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {}
        for i, t in enumerate(self.tokens):
            self._index.setdefault(t, i)

    def token_id(self, text: str) -> int | None:
        return self._index.get(text)

    def token_text(self, token: int) -> str | None:
        return self.tokens[token] if 0 <= token < len(self.tokens) else None

    def detect_fim(self) -> FimTokens | None:
        """FIM ids stated in the metadata, else found from the token texts."""

        def stated(key: str) -> int | None:
            kv = self.kvs.get(key)
            return None if kv is None else int(kv.value)

        return detect_fim(
            self.token_id,
            self.token_text,
            pre=stated(Keys.Tokenizer.FIM_PRE_ID),
            suf=stated(Keys.Tokenizer.FIM_SUF_ID),
            mid=stated(Keys.Tokenizer.FIM_MID_ID),
            eot=stated(Keys.Tokenizer.EOT_ID),
        )


def fim_kvs(fim: FimTokens) -> dict[str, KV]:
    ids = {
        Keys.Tokenizer.FIM_PRE_ID: fim.pre,
        Keys.Tokenizer.FIM_SUF_ID: fim.suf,
        Keys.Tokenizer.FIM_MID_ID: fim.mid,
        Keys.Tokenizer.EOT_ID: fim.eot,
    }
    return {key: kv_uint32(i) for key, i in ids.items() if i is not None}


def _pad(
    tokens: list[str], scores: list[float], types: list[int], vocab_size: int, source: Path
) -> None:
    if len(tokens) > vocab_size:
        raise MissingTokenizerError(
            f"{source}: tokenizer has {len(tokens)} tokens but the model's vocabulary is "
            f"{vocab_size}; the tokenizer does not belong to these weights"
        )
    for i in range(len(tokens), vocab_size):
        tokens.append(f"[PAD{i}]")
        scores.append(-1000.0)
        types.append(int(TokenType.UNUSED))


def sentencepiece_vocab(
    model_path: Path,
    vocab_size: int,
    added: Mapping[int, tuple[str, bool]] | None = None,
    special_ids: Mapping[str, int] | None = None,
) -> Vocab:
    """A sentencepiece model, plus Hugging Face ``added`` tokens (id -> (text, special)) and
    ``special_ids`` (GGUF key -> token id) that override the model's own."""
    from sentencepiece import SentencePieceProcessor

    model = parse_sentencepiece(model_path)
    try:
        sp = SentencePieceProcessor(model_file=str(model_path))
    except (OSError, RuntimeError) as exc:
        raise MissingTokenizerError(f"{model_path}: sentencepiece cannot load it ({exc})") from exc
    tokens = [p.piece for p in model.pieces]
    scores = [p.score for p in model.pieces]
    types = [p.type for p in model.pieces]
    for token_id in sorted(added or {}):
        text, special = (added or {})[token_id]
        if token_id < len(tokens):
            continue
        if token_id != len(tokens):
            raise MissingTokenizerError(
                f"{model_path}: added token {text!r} has id {token_id}, leaving a gap after "
                f"{len(tokens)} tokens"
            )
        tokens.append(text)
        scores.append(-1000.0)
        types.append(int(TokenType.CONTROL if special else TokenType.USER_DEFINED))
    _pad(tokens, scores, types, vocab_size, model_path)
    kvs: dict[str, KV] = {
        Keys.Tokenizer.MODEL: kv_string("llama"),
        Keys.Tokenizer.PRE: kv_string("default"),
        Keys.Tokenizer.LIST: kv_array(tokens, GGUFValueType.STRING),
        Keys.Tokenizer.SCORES: kv_array(scores, GGUFValueType.FLOAT32),
        Keys.Tokenizer.TOKEN_TYPE: kv_array(types, GGUFValueType.INT32),
    }
    ids = {
        Keys.Tokenizer.BOS_ID: sp.bos_id(),
        Keys.Tokenizer.EOS_ID: sp.eos_id(),
        Keys.Tokenizer.UNK_ID: sp.unk_id(),
        Keys.Tokenizer.PAD_ID: sp.pad_id(),
    }
    ids.update(special_ids or {})
    for key, value in ids.items():
        if value is not None and value >= 0:
            kvs[key] = kv_uint32(value)
    kvs[Keys.Tokenizer.ADD_BOS] = kv_bool(True)
    kvs[Keys.Tokenizer.ADD_EOS] = kv_bool(False)
    kvs[Keys.Tokenizer.ADD_PREFIX] = kv_bool(model.add_dummy_prefix)
    return Vocab(kvs, tokens)


def bpe_pre_tokenizer_name(tokenizer_json: Mapping[str, Any]) -> str | None:
    """llama.cpp's name for this tokenizer.json pre-tokenizer, when it is one we know."""
    pre = tokenizer_json.get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [p.get("type") for p in parts]
    if kinds == ["ByteLevel"] and parts[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and parts[0].get("individual_digits"):
        return "starcoder"
    splits = [p for p in parts if p.get("type") == "Split"]
    if splits and (splits[0].get("pattern") or {}).get("Regex") == _LLAMA3_REGEX:
        return "llama-bpe"
    return None


def bpe_vocab(
    path: Path, vocab_size: int, pre_name: str | None, special_ids: Mapping[str, int]
) -> Vocab:
    """A Hugging Face ``tokenizer.json`` byte-level BPE (GPT-2 style) tokenizer, with
    ``special_ids`` (GGUF key -> token id)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        model = data["model"]
    except (OSError, ValueError, KeyError) as exc:
        raise MissingTokenizerError(f"{path}: not a readable tokenizer.json ({exc})") from exc
    if model.get("type") != "BPE":
        raise MissingTokenizerError(
            f"{path}: tokenizer model type {model.get('type')!r} is not supported "
            "(BPE tokenizer.json or a sentencepiece tokenizer.model are)"
        )
    by_id: dict[int, tuple[str, int]] = {
        i: (t, int(TokenType.NORMAL)) for t, i in model["vocab"].items()
    }
    for added in data.get("added_tokens", []):
        kind = TokenType.CONTROL if added.get("special") else TokenType.USER_DEFINED
        by_id[int(added["id"])] = (added["content"], int(kind))
    n = max(by_id) + 1 if by_id else 0
    missing = [i for i in range(n) if i not in by_id]
    if missing:
        raise MissingTokenizerError(
            f"{path}: token ids {missing[:5]} are missing from the vocabulary"
        )
    tokens = [by_id[i][0] for i in range(n)]
    types = [by_id[i][1] for i in range(n)]
    scores: list[float] = [0.0] * n
    _pad(tokens, scores, types, vocab_size, path)
    name = pre_name or bpe_pre_tokenizer_name(data)
    if name is None:
        raise MissingTokenizerError(
            f"{path}: the pre-tokenizer is not one llamacode recognises; pass "
            "--bpe-pre NAME with llama.cpp's name for it (for example gpt-2, llama-bpe, "
            "qwen2, deepseek-coder)"
        )
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    kvs: dict[str, KV] = {
        Keys.Tokenizer.MODEL: kv_string("gpt2"),
        Keys.Tokenizer.PRE: kv_string(name),
        Keys.Tokenizer.LIST: kv_array(tokens, GGUFValueType.STRING),
        Keys.Tokenizer.TOKEN_TYPE: kv_array(types, GGUFValueType.INT32),
        Keys.Tokenizer.MERGES: kv_array(merges, GGUFValueType.STRING),
    }
    for key, value in special_ids.items():
        kvs[key] = kv_uint32(value)
    return Vocab(kvs, tokens)


def gguf_vocab(path: Path, vocab_size: int) -> Vocab:
    """The ``tokenizer.*`` keys of a GGUF (a tokenizer taken from an existing model), as stored."""
    if not path.is_file():
        raise MissingTokenizerError(f"{path}: tokenizer file is missing")
    kvs = {k: v for k, v in read_kv(open_gguf(path)).items() if k.startswith(TOKENIZER_PREFIX)}
    tokens = token_texts(kvs)
    if not tokens:
        raise MissingTokenizerError(f"{path}: GGUF holds no {Keys.Tokenizer.LIST}")
    if len(tokens) != vocab_size:
        raise MissingTokenizerError(
            f"{path}: tokenizer has {len(tokens)} tokens but the model's vocabulary is "
            f"{vocab_size}; the tokenizer does not belong to these weights"
        )
    return Vocab(kvs, tokens)
