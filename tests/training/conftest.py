"""Shared fixtures: a real tokenizer, real prepared data and a real tiny checkpoint.

The corpus is part of Python's standard library (present wherever Python is), so the
tests need no network and no checked-in data.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

STDLIB = Path(sysconfig.get_paths()["stdlib"])
CORPUS = [str(STDLIB / "json"), str(STDLIB / "email"), str(STDLIB / "logging")]


def tiny_overrides(tmp: Path, tokenizer: Path, data_dir: Path, **train: object) -> dict:
    """A config dict for a ~0.1M-parameter model that trains in about a second."""
    return {
        "model": {"dim": 32, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "hidden_dim": 96},
        "tokenizer": {"path": str(tokenizer), "vocab_size": 512},
        "data": {"sources": CORPUS, "dir": str(data_dir), "val_fraction": 0.1, "workers": 1},
        "optim": {"lr": 3e-3, "warmup_steps": 3},
        "train": {
            "out_dir": str(tmp / "run"),
            "steps": 6,
            "micro_batch_size": 4,
            "seq_len": 64,
            "eval_every": 3,
            "eval_batches": 2,
            "save_every": 1000,
            "log_every": 1000,
            "progress": False,
            "plot": False,
            "threads": 1,
            **train,
        },
    }


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from llamacode.training.sources import collect
    from llamacode.training.tokenizer import train_tokenizer

    path = tmp_path_factory.mktemp("tok") / "tokenizer.model"
    return train_tokenizer((d.text for d in collect(CORPUS)), path, vocab_size=512)


@pytest.fixture(scope="session")
def tokenizer(tokenizer_path: Path):
    from llamacode.training.tokenizer import Tokenizer

    return Tokenizer.load(tokenizer_path)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory, tokenizer_path: Path) -> Path:
    from llamacode.training.prepare import DataConfig, prepare_code

    out = tmp_path_factory.mktemp("data") / "code"
    prepare_code(DataConfig(sources=CORPUS, val_fraction=0.1, workers=1), tokenizer_path, out)
    return out


@pytest.fixture(scope="session")
def base_checkpoint(
    tmp_path_factory: pytest.TempPathFactory, tokenizer_path: Path, data_dir: Path
) -> Path:
    """A tiny pretrained checkpoint to start later stages from."""
    from llamacode.training.config import config_from_dict
    from llamacode.training.train import train

    tmp = tmp_path_factory.mktemp("base")
    result = train(config_from_dict(tiny_overrides(tmp, tokenizer_path, data_dir, steps=4)))
    return result.out_dir
