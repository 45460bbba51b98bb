"""Checkpoints as training writes and resumes them.

The directory format (``config.json``, ``model.safetensors``, the tokenizer file) is
:mod:`convert.checkpoint_format`, shared with convert. Training adds what resuming needs:
``optimizer.safetensors`` and ``trainer_state.json``. Nothing is pickled. Files are written
to a scratch directory beside the checkpoint and moved in, ``trainer_state.json`` last, so
a checkpoint with a trainer state is always complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from llamacode.convert.checkpoint_format import (
    CONFIG_FILE,
    MODEL_FILE,
    CheckpointConfig,
    ModelConfig,
    TokenizerRef,
    read_config,
    write_config,
)
from llamacode.runtime.errors import LlamacodeError

OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"


class CheckpointError(LlamacodeError):
    """A checkpoint directory that is missing the files training needs."""


def load_model_weights(ckpt_dir: str | Path) -> dict[str, torch.Tensor]:
    path = Path(ckpt_dir) / MODEL_FILE
    if not path.exists():
        raise CheckpointError(f"{ckpt_dir} has no {MODEL_FILE}")
    return load_file(path)


def tokenizer_path(ckpt_dir: str | Path) -> Path:
    """The checkpoint's tokenizer file: a sentencepiece model or a tokenizer-only GGUF."""
    return Path(ckpt_dir) / read_config(ckpt_dir).tokenizer.file


def optimizer_to_tensors(optim_state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list]:
    """Flatten a full optimizer state dict into ``{fqn}/{key}`` tensors and JSON groups."""
    tensors = {
        f"{fqn}/{key}": value.detach().contiguous().cpu()
        for fqn, state in optim_state["state"].items()
        for key, value in state.items()
    }
    return tensors, optim_state["param_groups"]


def optimizer_from_tensors(tensors: dict[str, torch.Tensor], groups: list) -> dict[str, Any]:
    state: dict[str, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        fqn, _, key = name.rpartition("/")
        state.setdefault(fqn, {})[key] = value
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    ckpt_dir: str | Path,
    *,
    model_config: ModelConfig,
    model_state: dict[str, torch.Tensor],
    tokenizer_file: Path,
    fim: dict[str, int | None] | None,
    chat_template: str | None,
    training: dict[str, Any],
    optimizer_tensors: dict[str, torch.Tensor] | None = None,
    trainer_state: dict[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint into ``ckpt_dir`` (replacing what is there).

    ``tokenizer_file`` is copied as it is: a sentencepiece ``.model``, or a ``.gguf``
    holding a reused model's ``tokenizer.*`` keys (which convert then copies unchanged).
    """
    ckpt_dir = Path(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=ckpt_dir, prefix=".partial-"))
    try:
        weights = {k: v.detach().contiguous().cpu() for k, v in model_state.items()}
        save_file(weights, tmp / MODEL_FILE, metadata={"format": "pt"})
        tokenizer = TokenizerRef(
            "gguf" if tokenizer_file.suffix == ".gguf" else "sentencepiece", fim
        )
        if tokenizer_file.resolve() != (ckpt_dir / tokenizer.file).resolve():
            shutil.copyfile(tokenizer_file, tmp / tokenizer.file)
        write_config(tmp, CheckpointConfig(model_config, tokenizer, chat_template, training))
        names = [MODEL_FILE, tokenizer.file, CONFIG_FILE]
        if optimizer_tensors is not None and trainer_state is not None:
            save_file(optimizer_tensors, tmp / OPTIMIZER_FILE)
            (tmp / STATE_FILE).write_text(json.dumps(trainer_state) + "\n")
            names += [OPTIMIZER_FILE, STATE_FILE]
        else:
            (ckpt_dir / STATE_FILE).unlink(missing_ok=True)
        for name in names:
            if (tmp / name).exists():
                os.replace(tmp / name, ckpt_dir / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ckpt_dir


def load_trainer_state(ckpt_dir: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The trainer state and the flat optimizer tensors of a resumable checkpoint."""
    ckpt_dir = Path(ckpt_dir)
    state_path = ckpt_dir / STATE_FILE
    if not state_path.exists() or not (ckpt_dir / OPTIMIZER_FILE).exists():
        raise CheckpointError(
            f"{ckpt_dir} cannot be resumed: {STATE_FILE} or {OPTIMIZER_FILE} is missing"
        )
    return json.loads(state_path.read_text()), load_file(ckpt_dir / OPTIMIZER_FILE)
