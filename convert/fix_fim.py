"""Repair a GGUF whose vocabulary has FIM pieces but whose metadata does not declare them.

Published Code Llama GGUFs often lack ``tokenizer.ggml.fim_*_token_id`` and
``eot_token_id``: llama.cpp then never stops at ``▁<EOT>``. This copies every key and
tensor unchanged and adds the ids found in the vocabulary.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from llamacode.convert.errors import FimTokensNotFoundError, MissingTokenizerError
from llamacode.convert.gguf_kv import (
    as_text,
    numpy_shape,
    open_gguf,
    read_kv,
    read_tensor_bytes,
    token_texts,
)
from llamacode.convert.gguf_write import PlannedTensor, write_gguf
from llamacode.convert.vocab import Vocab, fim_kvs
from llamacode.runtime.fim import FimTokens
from llamacode.runtime.gguf_keys import LLAMA_ARCH, TOKENIZER_PREFIX, Keys


def fix_fim(
    source: str | Path, output: str | Path, progress: bool = True
) -> tuple[FimTokens, list[str]]:
    """Write ``output`` with the FIM/EOT keys; returns the ids and the keys that were added."""
    source = Path(source)
    reader = open_gguf(source)
    kvs = read_kv(reader)
    tokens = token_texts(kvs)
    if not tokens:
        raise MissingTokenizerError(f"{source}: the GGUF holds no tokenizer vocabulary")
    tokenizer = {k: v for k, v in kvs.items() if k.startswith(TOKENIZER_PREFIX)}
    fim = Vocab(tokenizer, tokens).detect_fim()
    if fim is None:
        raise FimTokensNotFoundError(
            f"{source}: no fill-in-the-middle tokens in its vocabulary; this model cannot infill"
        )
    new = fim_kvs(fim)
    added = [k for k in new if k not in kvs]
    kvs.update(new)
    tensors = [
        PlannedTensor(t.name, numpy_shape(t), t.tensor_type, partial(read_tensor_bytes, source, t))
        for t in reader.tensors
    ]
    arch = as_text(kvs.get(Keys.General.ARCHITECTURE)) or LLAMA_ARCH
    write_gguf(output, kvs, tensors, arch=arch, progress=progress, desc="fix-fim")
    return fim, added
