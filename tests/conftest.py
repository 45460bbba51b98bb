"""Fixtures shared by every package's tests: real GGUF files for real llama.cpp."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamacode.runtime.catalog import SMOLLM2
from llamacode.runtime.install import is_verified
from llamacode.runtime.models import catalog_path
from tests.fixtures.gguf_models import (
    CODELLAMA_FIM,
    TinyVocab,
    chain,
    codellama_vocab,
    starcoder_vocab,
    write_tiny_gguf,
)


@pytest.fixture(scope="session")
def default_model() -> Path:
    """SmolLM2-135M-Instruct, the smallest catalog model (no FIM tokens), installed by
    `make test` through `llamacode models install smollm2-135m`."""
    path = catalog_path(SMOLLM2)
    if not is_verified(SMOLLM2, path):
        pytest.fail("SmolLM2 is not installed: run `llamacode models install smollm2-135m`")
    return path


@pytest.fixture(scope="session")
def cl_vocab() -> TinyVocab:
    return codellama_vocab()


@pytest.fixture(scope="session")
def codellama_gguf(tmp_path_factory: pytest.TempPathFactory, cl_vocab: TinyVocab) -> Path:
    """A Code Llama-like model whose greedy middle is ' return x + y' then EOT."""
    v = cl_vocab
    script = chain([v.id("▁return"), v.id("▁x"), v.id("▁+"), v.id("▁y"), CODELLAMA_FIM["eot"]])
    path = tmp_path_factory.mktemp("gguf") / "tiny-codellama.gguf"
    return write_tiny_gguf(
        path, v, script=script, default_next=v.id("▁return"), name="tiny-codellama"
    )


@pytest.fixture(scope="session")
def codellama_loop_gguf(tmp_path_factory: pytest.TempPathFactory, cl_vocab: TinyVocab) -> Path:
    """A Code Llama-like model that never stops: ' x y x y ...'."""
    v = cl_vocab
    script = {v.id("▁x"): v.id("▁y"), v.id("▁y"): v.id("▁x")}
    path = tmp_path_factory.mktemp("gguf") / "tiny-codellama-loop.gguf"
    return write_tiny_gguf(path, v, script=script, default_next=v.id("▁x"), name="tiny-loop")


@pytest.fixture(scope="session")
def starcoder_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A StarCoder-family model (byte-level BPE, <fim_prefix> tokens), random weights."""
    path = tmp_path_factory.mktemp("gguf") / "tiny-starcoder.gguf"
    return write_tiny_gguf(path, starcoder_vocab(), name="tiny-starcoder")
