"""The verbs end to end through `llamacode` (python -m llamacode.runtime), as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from gguf import GGUFReader, Keys

from llamacode.convert.checkpoint_format import CONFIG_FILE, MODEL_FILE, TOKENIZER_FILES


def llamacode(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llamacode.runtime", *map(str, args)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_convert_quantize_fix_fim_and_back(checkpoint: Path, tmp_path: Path):
    gguf = tmp_path / "m.q8_0.gguf"
    done = llamacode("convert", checkpoint, gguf, "--type", "q8_0", "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "MB/s" in done.stdout and "Q8_0" in done.stdout
    assert GGUFReader(gguf).fields[Keys.General.FILE_TYPE].contents() == 7

    small = tmp_path / "m.q4_k_m.gguf"
    done = llamacode("quantize", gguf, small, "Q4_K_M")
    assert done.returncode == 2
    assert f"error: {gguf}: already quantized (Q8_0)" in done.stderr
    assert not small.exists()
    done = llamacode("quantize", gguf, small, "Q4_K_M", "--allow-requantize")
    assert done.returncode == 0, done.stderr
    assert "MB ->" in done.stdout and "with llama.cpp" in done.stdout
    assert small.stat().st_size < gguf.stat().st_size
    # Outputs get the mode any new file gets, not the temporary file's 0600.
    umask = os.umask(0o022)
    os.umask(umask)
    assert {p.stat().st_mode & 0o777 for p in (gguf, small)} == {0o666 & ~umask}

    fixed = tmp_path / "fixed.gguf"
    done = llamacode("fix-fim", gguf, fixed, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert "all keys were already present" in done.stdout

    back = tmp_path / "back"
    done = llamacode("convert", gguf, back, "--no-progress")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in back.iterdir()) == [
        CONFIG_FILE, MODEL_FILE, TOKENIZER_FILES["gguf"]
    ]  # fmt: skip


def test_type_flag_is_refused_when_writing_a_checkpoint(tmp_path: Path, exported):
    done = llamacode("convert", exported("f16"), tmp_path / "ck", "--type", "f32")
    assert done.returncode == 2
    assert "error: --type" in done.stderr
    assert not (tmp_path / "ck").exists()
