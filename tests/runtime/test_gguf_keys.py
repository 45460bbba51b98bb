"""Our table of GGUF keys is gguf-py's, and reading headers does not import gguf."""

from __future__ import annotations

import struct
import subprocess
import sys

import gguf

from llamacode.runtime.gguf_keys import GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, LLAMA_ARCH, Keys


def _groups(table: type) -> dict[str, type]:
    return {name: value for name, value in vars(table).items() if isinstance(value, type)}


def test_every_key_is_spelled_as_gguf_spells_it():
    checked = 0
    for group_name, group in _groups(Keys).items():
        theirs = getattr(gguf.Keys, group_name)
        for name, value in vars(group).items():
            if name.isupper():
                assert getattr(theirs, name) == value, f"Keys.{group_name}.{name}"
                checked += 1
    assert checked >= 30


def test_file_constants_match_gguf():
    assert struct.pack("<I", gguf.GGUF_MAGIC) == GGUF_MAGIC
    assert gguf.GGUF_DEFAULT_ALIGNMENT == GGUF_DEFAULT_ALIGNMENT
    assert gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA] == LLAMA_ARCH


def test_reading_model_facts_needs_neither_gguf_nor_numpy_at_import():
    code = (
        "import sys, runtime.model_facts, runtime.gguf_file;"
        "heavy = {'gguf', 'numpy'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
