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


@pytest.fixture(scope="module")
def thousand_layers(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A model that declares 1000 layers and holds the tensors of one."""
    raw = bytearray(tiny_model.read_bytes())
    key = b"llama.block_count"
    at = raw.index(key) + len(key)
    assert struct.unpack_from("<II", raw, at) == (4, 1)  # uint32, one layer
    struct.pack_into("<I", raw, at + 4, 1000)
    path = tmp_path_factory.mktemp("gguf") / "thousand-layers.gguf"
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
def test_model_declaring_layers_it_lacks_is_refused_before_llama_cpp(
    verb: str, thousand_layers: Path, source: Path
):
    args = [f"{source}:2:5"] if verb == "complete" else ["-p", "hi"]
    line = one_line_error(llamacode(verb, *args, "--model", thousand_layers))
    assert "declares 1000 layers" in line and "tensors for 1" in line


@pytest.mark.slow
def test_complete_with_an_empty_prefix_on_the_default_model(default_model: Path, source: Path):
    done = llamacode("complete", f"{source}:1:1", "--model", default_model, "--threads", "1")
    stderr = done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0, stderr
    assert "Traceback" not in stderr and "NULL pointer" not in stderr
    assert "1 evaluated" in stderr  # the prompt is the model's start token alone
