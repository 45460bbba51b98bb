"""The sentencepiece tokenizer, trained the way Llama's was, with Code Llama's FIM pieces.

Llama's settings: BPE, byte fallback (no unknown characters), digits split one by one,
identity normalization (code keeps every byte it had), whitespace-only pieces (indentation
runs become single tokens), a dummy prefix, and no collapsing of repeated spaces. The four
FIM pieces ``▁<PRE> ▁<SUF> ▁<MID> ▁<EOT>`` are control symbols: they have ids, but no user
text ever encodes to them.

Suffixes and middles of FIM examples are encoded without the implicit leading space
(:meth:`Tokenizer.encode_nospace`); sentencepiece has no per-call switch for that, so a
second processor is loaded from the same model with ``add_dummy_prefix`` off.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import sentencepiece as spm

from llamacode.runtime.errors import InvalidModelError, LlamacodeError, ModelNotFoundError
from llamacode.runtime.fim import FimFamily, FimTokens
from llamacode.runtime.gguf_file import read_header
from llamacode.runtime.gguf_keys import Keys

FIM_PIECES = ("▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>")


class TokenizerError(LlamacodeError):
    """A tokenizer file that is missing or unusable, or training input that cannot work."""


def train_tokenizer(
    texts: Iterable[str],
    out_path: str | Path,
    vocab_size: int = 32000,
    *,
    max_sentence_length: int = 16384,
    input_sentence_size: int = 2_000_000,
    num_threads: int | None = None,
) -> Path:
    """Train a Llama-style BPE on ``texts`` (one document each) and write ``out_path``.

    Documents are split into lines for training (sentencepiece learns from "sentences");
    lines longer than ``max_sentence_length`` bytes are skipped by sentencepiece itself.
    When the corpus is too small for ``vocab_size`` the vocabulary ends up smaller rather
    than failing (``hard_vocab_limit=False``); read the size from the result.
    """
    out_path = Path(out_path)
    model = io.BytesIO()
    lines = (line for text in texts for line in text.split("\n") if line.strip())
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=_nonempty(lines),
            model_writer=model,
            model_type="bpe",
            vocab_size=vocab_size,
            character_coverage=0.99995,
            byte_fallback=True,
            split_digits=True,
            split_by_unicode_script=True,
            split_by_whitespace=True,
            allow_whitespace_only_pieces=True,
            remove_extra_whitespaces=False,
            add_dummy_prefix=True,
            normalization_rule_name="identity",
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            control_symbols=list(FIM_PIECES),
            hard_vocab_limit=False,
            max_sentence_length=max_sentence_length,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=True,
            num_threads=num_threads or max(1, os.cpu_count() or 1),
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise TokenizerError(f"sentencepiece training failed: {exc}") from exc
    out_path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_path, model.getvalue())
    return out_path


def _nonempty(lines: Iterator[str]) -> Iterator[str]:
    first = next(lines, None)
    if first is None:
        raise TokenizerError("no text to train the tokenizer on: give it non-empty source files")
    yield first
    yield from lines


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Tokenizer:
    """A sentencepiece model with the encodings FIM training and chat formatting need."""

    def __init__(self, model_proto: bytes, path: Path | None = None) -> None:
        self.path = path
        self.model_proto = model_proto
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        self._sp_nospace = spm.SentencePieceProcessor(
            model_proto=_without_dummy_prefix(model_proto)
        )
        self.bos_id: int = self.sp.bos_id()
        self.eos_id: int = self.sp.eos_id()
        ids = [self.sp.piece_to_id(p) for p in FIM_PIECES]
        present = all(self.sp.id_to_piece(i) == p for i, p in zip(ids, FIM_PIECES, strict=True))
        self.fim_ids: tuple[int, int, int, int] | None = tuple(ids) if present else None  # type: ignore[assignment]

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """A sentencepiece ``.model`` file, or the vocabulary of a llama-type GGUF."""
        path = Path(path)
        if path.suffix == ".gguf":
            return cls(sentencepiece_from_gguf(path), path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise TokenizerError(
                f"cannot read tokenizer {path}: {exc.strerror}; "
                "train one with `llamacode tokenizer train`"
            ) from exc
        try:
            return cls(data, path)
        except (RuntimeError, OSError) as exc:
            raise TokenizerError(f"{path} is not a sentencepiece model: {exc}") from exc

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    @property
    def sha256(self) -> str:
        """A fingerprint of what the tokenizer does (pieces, scores, types, dummy prefix),
        equal for the same vocabulary however it is stored (.model or GGUF)."""
        sp = self.sp
        h = hashlib.sha256()
        h.update(b"prefix" if self.encode("a")[:1] != self.encode_nospace("a")[:1] else b"none")
        for i in range(sp.get_piece_size()):
            kind = (sp.is_control(i), sp.is_unknown(i), sp.is_byte(i), sp.is_unused(i))
            h.update(f"{sp.id_to_piece(i)}\0{sp.get_score(i)!r}\0{kind}\n".encode())
        return h.hexdigest()

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Encode as sentencepiece does by default (with the implicit leading space)."""
        ids = self.sp.encode(text)
        return ([self.bos_id] if bos else []) + ids + ([self.eos_id] if eos else [])

    def encode_nospace(self, text: str) -> list[int]:
        """Encode without the implicit leading space (FIM suffixes and middles).

        Equivalent to Code Llama's ``encode("☺" + s)[2:]`` without depending on how the
        sentinel happens to be split: the dummy prefix is switched off in the model itself.
        """
        return self._sp_nospace.encode(text)

    def decode(self, ids: Iterable[int]) -> str:
        """Decode ids produced by :meth:`encode` (the leading space is dropped again)."""
        return self.sp.decode(list(ids))

    def decode_nospace(self, ids: Iterable[int]) -> str:
        """Decode ids produced by :meth:`encode_nospace` (a leading space is kept)."""
        return self._sp_nospace.decode(list(ids))

    def fim_tokens(self, *, bos: bool = True) -> FimTokens:
        """The Code Llama FIM ids of this vocabulary, with BOS as serving prompts start."""
        if self.fim_ids is None:
            raise TokenizerError(
                f"tokenizer {self.path or ''} has no FIM pieces {' '.join(FIM_PIECES)}; "
                "train one with `llamacode tokenizer train`"
            )
        pre, suf, mid, eot = self.fim_ids
        return FimTokens(FimFamily.CODELLAMA, pre, suf, mid, eot, self.bos_id if bos else None)


# sentencepiece's ModelProto: field 3 is normalizer_spec; in it, field 3 is add_dummy_prefix.
_NORMALIZER_SPEC = 3
_ADD_DUMMY_PREFIX = 3


def _without_dummy_prefix(model_proto: bytes) -> bytes:
    """The same model with ``normalizer_spec.add_dummy_prefix = false``.

    Edits the protobuf wire format directly (protobuf itself is not a dependency).
    """
    out = bytearray()
    for field, wire, raw, value in _fields(model_proto):
        if field == _NORMALIZER_SPEC and wire == 2:
            inner = bytearray()
            for f2, w2, raw2, _ in _fields(value):
                if not (f2 == _ADD_DUMMY_PREFIX and w2 == 0):
                    inner += raw2
            inner += _varint(_ADD_DUMMY_PREFIX << 3) + _varint(0)
            out += _varint(field << 3 | 2) + _varint(len(inner)) + inner
        else:
            out += raw
    return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, int, bytes, bytes]]:
    """(field number, wire type, the field's raw bytes, its payload) for each field."""
    pos = 0
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(buf, pos)
            payload = b""
        elif wire == 1:
            pos += 8
            payload = b""
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            payload = buf[pos : pos + length]
            pos += length
        elif wire == 5:
            pos += 4
            payload = b""
        else:
            raise TokenizerError(f"unsupported protobuf wire type {wire} in tokenizer model")
        if pos > len(buf):
            raise TokenizerError("truncated sentencepiece model")
        yield field, wire, buf[start:pos], payload


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TokenizerError("truncated sentencepiece model")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _int_field(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value & ((1 << 64) - 1))


def _bytes_field(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


def sentencepiece_from_gguf(path: str | Path) -> bytes:
    """A sentencepiece BPE model equivalent to a llama-type (SPM) GGUF vocabulary.

    llama.cpp's SPM tokenizer merges by piece score with byte fallback, as sentencepiece's
    BPE does, and GGUF token types use sentencepiece's numbering, so the pieces, scores and
    types carry over as they are. GPT-2-style BPE vocabularies (``tokenizer.ggml.model``
    "gpt2") have no sentencepiece equivalent and are refused.
    """
    try:
        header = read_header(path, skip_arrays=(Keys.Tokenizer.MERGES,))
    except (InvalidModelError, ModelNotFoundError) as exc:
        raise TokenizerError(f"cannot read the tokenizer in {path}: {exc}") from exc
    value = header.metadata.get

    model = value(Keys.Tokenizer.MODEL)
    if model != "llama":
        raise TokenizerError(
            f"{path}: tokenizer type {model!r} cannot be trained with here; only llama "
            "(sentencepiece) vocabularies such as Llama 2 / Code Llama's can"
        )
    tokens = value(Keys.Tokenizer.LIST)
    scores = value(Keys.Tokenizer.SCORES, [0.0] * len(tokens or ()))
    types = value(Keys.Tokenizer.TOKEN_TYPE, [1] * len(tokens or ()))
    if not (
        isinstance(tokens, list)
        and isinstance(scores, list)
        and isinstance(types, list)
        and len(tokens) == len(scores) == len(types) > 0
        and all(isinstance(t, str) for t in tokens)
    ):
        raise TokenizerError(
            f"{path}: {Keys.Tokenizer.LIST}, {Keys.Tokenizer.SCORES} and "
            f"{Keys.Tokenizer.TOKEN_TYPE} are not arrays of the same, non-zero length"
        )
    out = bytearray()
    for piece, score, kind in zip(tokens, scores, types, strict=True):
        body = _bytes_field(1, piece.encode("utf-8"))
        body += _key(2, 5) + struct.pack("<f", float(score)) + _int_field(3, int(kind))
        out += _bytes_field(1, body)
    trainer = _int_field(3, 2) + _int_field(4, len(tokens)) + _int_field(35, 1)
    # TrainerSpec's unk_piece, bos_piece and eos_piece.
    for field, key in (
        (45, Keys.Tokenizer.UNK_ID),
        (46, Keys.Tokenizer.BOS_ID),
        (47, Keys.Tokenizer.EOS_ID),
    ):
        token_id = value(key)
        if isinstance(token_id, int) and 0 <= token_id < len(tokens):
            trainer += _bytes_field(field, tokens[token_id].encode("utf-8"))
    out += _bytes_field(2, trainer)
    add_prefix = bool(value(Keys.Tokenizer.ADD_PREFIX, True))
    normalizer = (
        _bytes_field(1, b"identity")
        + _int_field(3, int(add_prefix))
        + _int_field(4, 0)
        + _int_field(5, 1)
    )
    out += _bytes_field(3, normalizer)
    return bytes(out)
