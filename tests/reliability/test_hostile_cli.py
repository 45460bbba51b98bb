"""Hostile input to the command line: every failure is one line on stderr and exit status 2,
never a traceback, and a model that would crash llama.cpp is refused before it loads."""

from __future__ import annotations

import struct
import time
from pathlib import Path

import pytest

from tests.fixtures.gguf_models import starcoder_vocab, write_tiny_gguf
from tests.reliability.runcli import llamacode, one_line_error


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return write_tiny_gguf(path, starcoder_vocab(), n_embd=32, n_head=2)


def declaring_layers(tiny_model: Path, declared: int, where: Path) -> Path:
    """A copy of the one-layer model whose header declares ``declared`` layers."""
    raw = bytearray(tiny_model.read_bytes())
    key = b"llama.block_count"
    at = raw.index(key) + len(key)
    assert struct.unpack_from("<II", raw, at) == (4, 1)  # uint32, one layer
    struct.pack_into("<I", raw, at + 4, declared)
    path = where / f"declares-{declared}-layers.gguf"
    path.write_bytes(raw)
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "main.py"
    path.write_text("def f():\n    return 1\n", encoding="utf-8")
    return path


# Inputs --------------------------------------------------------------------------------


def test_complete_on_a_binary_file_is_one_line(tmp_path: Path, tiny_model: Path):
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 8)
    line = one_line_error(llamacode("complete", f"{binary}:1:1", "--model", tiny_model))
    assert "binary file" in line and str(binary) in line


def test_complete_on_invalid_utf8_is_one_line(tmp_path: Path, tiny_model: Path):
    latin1 = tmp_path / "latin1.py"
    latin1.write_bytes("x = 'caf\u00e9'\n".encode("latin-1"))
    line = one_line_error(llamacode("complete", f"{latin1}:1:1", "--model", tiny_model))
    assert "not UTF-8" in line


def test_binary_extra_context_file_is_one_line(tmp_path: Path, tiny_model: Path, source: Path):
    binary = tmp_path / "lib.so"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(256))
    done = llamacode("complete", f"{source}:2:5", "--extra", binary, "--model", tiny_model)
    line = one_line_error(done)
    assert "extra context file" in line and "binary" in line


def test_chat_prompt_with_invalid_utf8_is_one_line(tiny_model: Path):
    line = one_line_error(llamacode("chat", "-p", b"caf\xe9?", "--model", tiny_model))
    assert "not valid UTF-8" in line


def test_complete_on_dev_zero_stops_at_the_size_cap(tiny_model: Path):
    started = time.monotonic()
    line = one_line_error(llamacode("complete", "/dev/zero:1:1", "--model", tiny_model))
    assert "/dev/zero is larger than" in line
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("verb", ["complete", "chat"])
@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        (1000, "llama.block_count is 1000 (expected 1 to 512)"),  # llama.cpp aborted on it
        (8, "llama.block_count declares 8 layers but it holds tensors for 1"),
    ],
)
def test_model_declaring_layers_it_lacks_is_refused_before_llama_cpp(
    verb: str, declared: int, problem: str, tiny_model: Path, source: Path, tmp_path: Path
):
    model = declaring_layers(tiny_model, declared, tmp_path)
    args = [f"{source}:2:5"] if verb == "complete" else ["-p", "hi"]
    line = one_line_error(llamacode(verb, *args, "--model", model))
    assert problem in line


def test_model_with_more_layers_than_llama_cpp_allows_is_refused(tmp_path: Path, source: Path):
    # Every tensor is there; llama.cpp still aborts the process past 512 layers.
    model = write_tiny_gguf(
        tmp_path / "deep.gguf", starcoder_vocab(), n_embd=8, n_head=2, n_layer=600
    )
    line = one_line_error(llamacode("complete", f"{source}:2:5", "--model", model))
    assert "block_count is 600 (expected 1 to 512)" in line


@pytest.mark.slow
def test_complete_with_an_empty_prefix_on_the_default_model(default_model: Path, source: Path):
    done = llamacode("complete", f"{source}:1:1", "--model", default_model, "--threads", "1")
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr and "NULL pointer" not in stderr
    assert "1 evaluated" in stderr  # the prompt is the model's start token alone
