"""Hostile and broken GGUF files: each is refused with a clear error before llama.cpp reads it."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamacode.runtime.config import EngineConfig
from llamacode.runtime.engine import Engine
from llamacode.runtime.errors import InvalidModelError, LlamacodeError
from llamacode.runtime.gguf_file import read_header
from llamacode.runtime.model_facts import read_facts
from tests.fixtures.gguf_models import codellama_vocab, starcoder_vocab, write_tiny_gguf

U32, U64, F32, STR, ARR = 4, 10, 6, 8, 9
# `make fuzz` raises this for a longer run.
FUZZ_EXAMPLES = int(os.environ.get("LLAMACODE_FUZZ_EXAMPLES", "150"))


def s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def gguf_bytes(
    kvs: list[bytes], tensors: list[bytes] = (), data: bytes = b"", version: int = 3
) -> bytes:
    head = (
        b"GGUF"
        + struct.pack("<IQQ", version, len(tensors), len(kvs))
        + b"".join(kvs)
        + b"".join(tensors)
    )
    head += b"\0" * (-len(head) % 32)
    return head + data


def tensor(name: str, dims: tuple[int, ...], ggml_type: int = 0, offset: int = 0) -> bytes:
    return (
        s(name)
        + struct.pack("<I", len(dims))
        + b"".join(struct.pack("<Q", d) for d in dims)
        + struct.pack("<IQ", ggml_type, offset)
    )


ARCH = kv("general.architecture", STR, s("llama"))

CASES = {
    "bad magic": (b"GGML" + b"\0" * 60, "not a GGUF"),
    "unsupported version": (gguf_bytes([ARCH], version=7), "version 7"),
    "absurd tensor count": (b"GGUF" + struct.pack("<IQQ", 3, 2**50, 0), "tensors"),
    "absurd key count": (b"GGUF" + struct.pack("<IQQ", 3, 0, 2**50), "metadata entries"),
    "huge string length": (
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**40),
        "length",
    ),
    "array longer than the file": (
        gguf_bytes([kv("tokenizer.ggml.tokens", ARR, struct.pack("<IQ", STR, 2**40))]),
        "more than the file holds",
    ),
    "too many dimensions": (gguf_bytes([ARCH], [tensor("t", (1, 1, 1, 1, 1))]), "dimensions"),
    "overflowing shape": (
        gguf_bytes([ARCH], [tensor("t", (2**32, 2**32, 2**32))]),
        "misaligned type|past the end",
    ),
    "offset past the end": (
        gguf_bytes([ARCH], [tensor("t", (8,), 0, 1 << 20)], b"\0" * 32),
        "past the end",
    ),
    "truncated data": (gguf_bytes([ARCH], [tensor("t", (1024,))], b"\0" * 100), "past the end"),
    "unknown tensor type": (
        gguf_bytes([ARCH], [tensor("t", (32,), 9999)], b"\0" * 4096),
        "unknown or misaligned",
    ),
    "unknown value type": (gguf_bytes([kv("x", 77, b"")]), "unknown value type"),
    "wrong-typed token array": (
        gguf_bytes(
            [
                ARCH,
                kv(
                    "tokenizer.ggml.tokens",
                    ARR,
                    struct.pack("<IQ", U32, 2) + struct.pack("<II", 1, 2),
                ),
            ]
        ),
        "not an array of strings",
    ),
    "too many layers": (
        gguf_bytes([ARCH, kv("llama.block_count", U32, struct.pack("<I", 100_000))]),
        "block_count",
    ),
    "string-typed layer count": (
        gguf_bytes([ARCH, kv("llama.block_count", STR, s("32"))]),
        "not an integer",
    ),
    "scores that do not match the tokens": (
        gguf_bytes(
            [
                ARCH,
                kv("tokenizer.ggml.tokens", ARR, struct.pack("<IQ", STR, 2) + s("a") + s("b")),
                kv(
                    "tokenizer.ggml.scores",
                    ARR,
                    struct.pack("<IQ", F32, 1) + struct.pack("<f", 0.0),
                ),
            ]
        ),
        "1 entries for 2 tokens",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_file_is_refused_with_a_clear_error(tmp_path: Path, name: str):
    raw, message = CASES[name]
    path = tmp_path / "hostile.gguf"
    path.write_bytes(raw)
    with pytest.raises(InvalidModelError, match=message) as info:
        read_facts(path)
    assert str(path) in str(info.value)
    with pytest.raises(InvalidModelError):
        Engine.load(path)


def test_file_that_crashes_llama_cpp_is_caught_by_the_trial_load(tmp_path: Path):
    vocab = codellama_vocab()
    vocab.tokens[300] = vocab.tokens[301]  # llama.cpp aborts on a duplicate sentencepiece piece
    path = write_tiny_gguf(tmp_path / "dup.gguf", vocab)
    with pytest.raises(InvalidModelError, match="crashed"):
        Engine.load(path, EngineConfig(isolate_load=True))


def test_trial_load_passes_a_good_file(codellama_gguf: Path):
    engine = Engine.load(codellama_gguf, EngineConfig(isolate_load=True))
    assert engine.infill("def f(x, y):\n    ", "\n").text == " return x + y"


@pytest.fixture(scope="module")
def small_valid_gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "seed.gguf"
    return write_tiny_gguf(path, starcoder_vocab(), n_embd=32, n_head=2).read_bytes()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_files_give_the_typed_error_or_a_header(
    tmp_path: Path, small_valid_gguf: bytes, data
):
    raw = bytearray(small_valid_gguf)
    header_end = min(len(raw), 12_000)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, header_end - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(raw))))
    path = tmp_path / "mutant.gguf"
    path.write_bytes(bytes(raw[:cut]))
    try:
        facts = read_facts(path)
    except LlamacodeError as exc:
        assert str(path) in str(exc) or "not found" in str(exc)
    else:
        assert facts.path == path


def test_header_reader_reports_tensor_layout(codellama_gguf: Path):
    header = read_header(codellama_gguf)
    names = {t.name: t for t in header.tensors}
    assert names["token_embd.weight"].shape == (64, 32016)
    assert names["token_embd.weight"].n_bytes == 64 * 32016 * 4
    assert header.data_offset % 32 == 0
