"""Outputs of convert and quantize: never replaced without --force, a directory that cannot be
written is one line of error, and a conversion stopped by SIGTERM leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.gguf_models import codellama_vocab, starcoder_vocab, write_tiny_gguf
from tests.reliability.runcli import llamacode, one_line_error


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return write_tiny_gguf(path, starcoder_vocab(), n_embd=32, n_head=2)


# Outputs -------------------------------------------------------------------------------


def test_output_directory_that_cannot_be_written_is_one_line(tmp_path: Path, tiny_model: Path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    # root writes anywhere it may chmod; sysfs refuses new files even to root
    where = locked if not os.access(locked, os.W_OK) else Path("/sys")
    try:
        done = llamacode("quantize", tiny_model, where / "out.gguf", "q8_0", "--no-progress")
    finally:
        locked.chmod(0o755)
    line = one_line_error(done)
    assert f"cannot write {where / 'out.gguf'}" in line and "Permission denied" in line


@pytest.mark.parametrize("kind", ["read-only GGUF", "file that is not a GGUF"])
def test_quantize_never_replaces_an_existing_output_without_force(
    tmp_path: Path, tiny_model: Path, kind: str
):
    out = tmp_path / "out.gguf"
    if kind == "read-only GGUF":
        out.write_bytes(tiny_model.read_bytes())
        out.chmod(0o444)
    else:
        out.write_text("my notes\n", encoding="utf-8")
    before = out.read_bytes()
    line = one_line_error(llamacode("quantize", tiny_model, out, "q8_0", "--no-progress"))
    assert "already exists" in line and "--force" in line
    assert out.read_bytes() == before
    done = llamacode("quantize", tiny_model, out, "q8_0", "--no-progress", "--force")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() != before and out.read_bytes()[:4] == b"GGUF"
    assert not list(tmp_path.glob(".*.partial"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint directory big enough that writing it as a GGUF takes a moment."""
    root = tmp_path_factory.mktemp("ck")
    gguf = write_tiny_gguf(root / "src.gguf", codellama_vocab(), n_embd=256, n_head=4)
    done = llamacode("convert", gguf, root / "checkpoint", "--no-progress")
    assert done.returncode == 0, done.stderr
    return root / "checkpoint"


def test_convert_never_replaces_an_existing_gguf_without_force(tmp_path: Path, checkpoint: Path):
    out = tmp_path / "model.gguf"
    out.write_text("not a model\n", encoding="utf-8")
    line = one_line_error(llamacode("convert", checkpoint, out, "--no-progress"))
    assert "already exists" in line and "--force" in line
    assert out.read_text(encoding="utf-8") == "not a model\n"
    done = llamacode("convert", checkpoint, out, "--no-progress", "--force")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes()[:4] == b"GGUF"


def test_sigterm_during_convert_leaves_no_partial_files(tmp_path: Path, checkpoint: Path):
    out = tmp_path / "model.gguf"
    argv = [sys.executable, "-m", "llamacode.runtime", "convert", str(checkpoint), str(out)]
    proc = subprocess.Popen(
        [*argv, "--type", "q8_0", "--no-progress"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".*.partial")):
        assert proc.poll() is None, "convert ended before its output was started"
        assert time.monotonic() < deadline, "convert never started writing"
        time.sleep(0.002)
    # Frozen mid-write, then terminated: the signal lands while the output is partial.
    proc.send_signal(signal.SIGSTOP)
    assert list(tmp_path.glob(".*.partial")), "convert finished before it could be stopped"
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGCONT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr.decode("utf-8", "replace")
    assert list(tmp_path.iterdir()) == []
