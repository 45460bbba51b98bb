"""A published GGUF (llama or qwen2, any quantization) as a trainable PyTorch model.

The model is built on the meta device, so no memory is spent on an initialisation that
would be overwritten, and each dequantized tensor becomes its parameter without a copy.
The largest tensors (the vocabulary matrices) are read first, while little else is held,
so peak memory stays near the float32 model's size.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from llamacode.convert.import_gguf import open_gguf_model
from llamacode.training.model import Transformer


def load_pretrained(
    path: str | Path,
    max_seq_len: int | None = None,
    activation_checkpointing: bool = False,
) -> Transformer:
    """The GGUF at ``path`` as a float32 :class:`Transformer` on the CPU, in eval mode.

    ``max_seq_len`` replaces the file's context length (the longest sequence ``forward``
    accepts). Raises the errors of :func:`open_gguf_model` for a file the model cannot hold.
    """
    gguf_model = open_gguf_model(path)
    config = gguf_model.hparams
    if max_seq_len is not None:
        config = dataclasses.replace(config, max_seq_len=max_seq_len)
    with torch.device("meta"):
        model = Transformer(config, activation_checkpointing=activation_checkpointing)
    by_size = sorted(gguf_model.tensors, key=lambda m: gguf_model.tensors[m].n_bytes, reverse=True)
    for meta in by_size:
        module, _, name = meta.rpartition(".")
        data = torch.from_numpy(gguf_model.read(meta))
        setattr(model.get_submodule(module), name, nn.Parameter(data))
    return model.eval()
