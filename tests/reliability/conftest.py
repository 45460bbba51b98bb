"""Fixtures for the reliability tests: scripted FIM models and raw server processes."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.gguf_models import CODELLAMA_FIM, TinyVocab, chain, write_tiny_gguf
from tests.reliability.rawlsp import RawServer

# At an indented empty line the scripted model's middle is "x = y".
MIDDLE = "x = y"


@pytest.fixture(scope="session")
def middle_gguf(tmp_path_factory: pytest.TempPathFactory, cl_vocab: TinyVocab) -> Path:
    """A Code Llama-like FIM model whose greedy middle is a new line ``    x = y``."""
    v = cl_vocab
    tokens = ["<0x0A>", "▁▁▁▁", "x", "▁=", "▁y"]
    script = chain([*(v.id(t) for t in tokens), CODELLAMA_FIM["eot"]])
    path = tmp_path_factory.mktemp("gguf") / "tiny-middle.gguf"
    return write_tiny_gguf(path, v, script=script, default_next=v.id("<0x0A>"), name="tiny-middle")


@pytest.fixture(scope="session")
def endless_gguf(tmp_path_factory: pytest.TempPathFactory, cl_vocab: TinyVocab) -> Path:
    """A model that never stops (`` x y x y ...``) with room for 32k tokens of it."""
    v = cl_vocab
    script = {v.id("▁x"): v.id("▁y"), v.id("▁y"): v.id("▁x")}
    path = tmp_path_factory.mktemp("gguf") / "tiny-endless.gguf"
    return write_tiny_gguf(
        path, v, script=script, default_next=v.id("▁x"), name="tiny-endless", context_length=32768
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def copy_model(tmp_path: Path):
    """A private copy of a model file (a test may delete it)."""

    def copy(source: Path) -> Path:
        target = tmp_path / "models" / source.name
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, target)
        return target

    return copy


def started(
    model: Path, root: Path, log: Path, *flags: str, **options: object
) -> Iterator[RawServer]:
    """A server initialized on ``root`` with ``model`` loaded (for fixtures: yields, closes)."""
    server = RawServer(*flags, stderr_path=log)
    try:
        server.initialize(root, {"modelPath": str(model), "trusted": True, **options})
        state = server.wait_for_model()
        assert state["model"]["state"] == "ready", state["model"]
        yield server
    finally:
        try:
            server.close(timeout=15)
        finally:
            server.kill()
