from __future__ import annotations

from pathlib import Path

import pytest

from tests.convert.convert_helpers import make_model, train_sentencepiece, write_checkpoint

FIM = {"pre": 3, "suf": 4, "mid": 5, "eot": 6}
CHAT_TEMPLATE = "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"


@pytest.fixture(scope="session")
def sp_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sp") / "tokenizer.model"
    train_sentencepiece(path)
    return path


@pytest.fixture(scope="session")
def tiny_model():
    return make_model()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_model, sp_model: Path) -> Path:
    return write_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "tiny-fim", tiny_model, sp_model, FIM, CHAT_TEMPLATE
    )


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path):
    """checkpoint -> GGUF of each numpy type, converted once for the whole session."""
    from llamacode.convert.export_gguf import export_gguf

    out = tmp_path_factory.mktemp("gguf")
    cache: dict[str, Path] = {}

    def get(out_type: str) -> Path:
        if out_type not in cache:
            path = out / f"tiny.{out_type}.gguf"
            export_gguf(checkpoint, path, out_type, progress=False)
            cache[out_type] = path
        return cache[out_type]

    return get


@pytest.fixture(scope="session")
def tokens() -> list[int]:
    import numpy as np

    return [1, *np.random.RandomState(0).randint(8, 400, size=40).tolist()]
