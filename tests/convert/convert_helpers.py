"""Shared builders for the conversion tests: tiny real models, real llama.cpp."""

from __future__ import annotations

import io
import random
from pathlib import Path

import numpy as np

from llamacode.convert.checkpoint_format import (
    MODEL_FILE,
    CheckpointConfig,
    ModelConfig,
    TokenizerRef,
    write_config,
)

FIM_PIECES = ["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"]
WORDS = [
    "def", "return", "class", "self", "import", "for", "in", "if", "else", "print",
    "x", "y", "value", "items", "list", "(", ")", ":", "=", "+", "0", "1", "2", "\n", "    ",
]  # fmt: skip


def train_sentencepiece(path: Path, vocab_size: int = 400) -> None:
    """A Llama-style BPE sentencepiece model with the Code Llama FIM pieces as controls."""
    import sentencepiece as spm

    rng = random.Random(0)
    lines = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(2000)]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=buf,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        control_symbols=FIM_PIECES,
        user_defined_symbols=["<tab>"],
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        minloglevel=2,
    )
    path.write_bytes(buf.getvalue())


def make_model(seed: int = 0, **overrides):
    """A random Llama with weights large enough for peaked, distinct logits."""
    import torch

    from llamacode.training.model import Transformer

    fields = dict(
        dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=400, hidden_dim=192,
        rope_theta=500000.0, max_seq_len=256,
    )  # fmt: skip
    fields.update(overrides)
    torch.manual_seed(seed)
    model = Transformer(ModelConfig(**fields))
    model.reset_parameters(std=0.2)
    return model.eval()


def write_checkpoint(
    directory: Path,
    model,
    tokenizer: Path,
    fim: dict[str, int] | None,
    chat_template: str | None = None,
) -> Path:
    """Save a Transformer as a checkpoint directory."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, directory / MODEL_FILE)
    tokenizer_ref = TokenizerRef("sentencepiece", fim)
    (directory / tokenizer_ref.file).write_bytes(tokenizer.read_bytes())
    config = CheckpointConfig(model.config, tokenizer_ref, chat_template, {"stage": "test"})
    write_config(directory, config)
    return directory


def torch_logits(model, tokens: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        return model(torch.tensor([tokens]))[0].float().numpy()


def open_llama(path: Path, n_ctx: int = 256, f32_cache: bool = True):
    from llama_cpp import Llama

    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        logits_all=True,
        verbose=False,
        n_threads=2,
        seed=0,
        type_k=0 if f32_cache else None,
        type_v=0 if f32_cache else None,
    )


def llama_logits(path: Path, tokens: list[int]) -> np.ndarray:
    llm = open_llama(path)
    try:
        llm.eval(tokens)
        return np.array(llm.scores[: len(tokens)], dtype=np.float32)
    finally:
        llm.close()


def gguf_tensors(path: Path) -> dict[str, tuple[int, bytes, tuple[int, ...]]]:
    """name -> (ggml type, raw bytes, shape) of every tensor in a GGUF."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    return {
        t.name: (int(t.tensor_type), t.data.tobytes(), tuple(int(d) for d in t.shape))
        for t in reader.tensors
    }
