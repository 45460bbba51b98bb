"""Our checkpoint -> GGUF: llama.cpp computes what the PyTorch model computes."""

from __future__ import annotations

import numpy as np
from gguf import (
    MODEL_ARCH,
    MODEL_ARCH_NAMES,
    MODEL_TENSOR,
    TENSOR_NAMES,
    GGUFReader,
    Keys,
    TokenType,
)

from llamacode.convert.export_gguf import export_gguf
from tests.convert.convert_helpers import (
    llama_logits,
    make_model,
    open_llama,
    torch_logits,
    write_checkpoint,
)

LLAMA = MODEL_ARCH_NAMES[MODEL_ARCH.LLAMA]
FIM_KEYS = [
    Keys.Tokenizer.FIM_PRE_ID,
    Keys.Tokenizer.FIM_SUF_ID,
    Keys.Tokenizer.FIM_MID_ID,
    Keys.Tokenizer.EOT_ID,
]


def _weight(tensor: MODEL_TENSOR, block: int | None = None) -> str:
    return TENSOR_NAMES[tensor].format(bid=block) + ".weight"


def _max_diff(gguf_path, model, tokens) -> float:
    diff = float(np.abs(llama_logits(gguf_path, tokens) - torch_logits(model, tokens)).max())
    print(f"{gguf_path.name}: max |llama.cpp - torch| = {diff:.3g}")
    return diff


def test_f32_logits_match_pytorch(exported, tiny_model, tokens):
    assert _max_diff(exported("f32"), tiny_model, tokens) < 1e-3


def test_f16_logits_close_to_pytorch(exported, tiny_model, tokens):
    assert _max_diff(exported("f16"), tiny_model, tokens) < 0.05


def test_bf16_logits_close_to_pytorch(exported, tiny_model, tokens):
    assert _max_diff(exported("bf16"), tiny_model, tokens) < 0.5


def test_q8_0_logits_within_measured_bound(exported, tiny_model, tokens):
    # Measured 0.42 on logits of magnitude up to 8.3 (q8_0 weights and q8 activations).
    ref = torch_logits(tiny_model, tokens)
    got = llama_logits(exported("q8_0"), tokens)
    assert float(np.abs(got - ref).max()) < 0.6
    assert (got.argmax(-1) == ref.argmax(-1)).mean() > 0.85


def test_q4_0_keeps_output_in_q8_0(exported):
    types = {t.name: t.tensor_type.name for t in GGUFReader(exported("q4_0")).tensors}
    assert types[_weight(MODEL_TENSOR.OUTPUT)] == "Q8_0"
    assert types[_weight(MODEL_TENSOR.ATTN_Q, 0)] == "Q4_0"
    assert types[_weight(MODEL_TENSOR.ATTN_NORM, 0)] == "F32"


def test_f32_greedy_generation_identical(exported, tiny_model, tokens):
    import torch

    prompt = tokens[:8]
    ids = list(prompt)
    with torch.no_grad():
        for _ in range(24):
            ids.append(int(tiny_model(torch.tensor([ids]))[0, -1].argmax()))
    llm = open_llama(exported("f32"))
    try:
        got = []
        for tok in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            got.append(tok)
            if len(got) == 24:
                break
    finally:
        llm.close()
    assert got == ids[len(prompt) :]


def test_metadata_llama_cpp_needs(exported, checkpoint, tiny_model):
    reader = GGUFReader(exported("f16"))
    f = {k: v.contents() for k, v in reader.fields.items()}
    c = tiny_model.config
    assert f[Keys.General.ARCHITECTURE] == LLAMA
    assert f[Keys.General.NAME] == checkpoint.name
    assert f[Keys.General.FILE_TYPE] == 1
    assert f[Keys.Rope.FREQ_BASE.format(arch=LLAMA)] == c.rope_theta == 500000.0
    assert f[Keys.LLM.CONTEXT_LENGTH.format(arch=LLAMA)] == c.max_seq_len
    assert f[Keys.Rope.DIMENSION_COUNT.format(arch=LLAMA)] == c.dim // c.n_heads
    assert f[Keys.Attention.HEAD_COUNT_KV.format(arch=LLAMA)] == c.n_kv_heads
    assert f[Keys.LLM.FEED_FORWARD_LENGTH.format(arch=LLAMA)] == c.hidden_dim
    assert f[Keys.Tokenizer.MODEL] == "llama"
    assert (f[Keys.Tokenizer.BOS_ID], f[Keys.Tokenizer.EOS_ID]) == (1, 2)
    assert f[Keys.Tokenizer.UNK_ID] == 0
    assert [f[k] for k in FIM_KEYS] == [3, 4, 5, 6]
    assert f[Keys.Tokenizer.CHAT_TEMPLATE].startswith("{% for m in messages %}")
    types = f[Keys.Tokenizer.TOKEN_TYPE]
    tokens = f[Keys.Tokenizer.LIST]
    assert types[0] == TokenType.UNKNOWN
    assert types[tokens.index("▁<EOT>")] == TokenType.CONTROL
    assert types[tokens.index("<tab>")] == TokenType.USER_DEFINED
    assert types[tokens.index("<0x0A>")] == TokenType.BYTE
    assert TokenType.NORMAL in types
    assert len(tokens) == c.vocab_size


def test_llama_cpp_tokenizes_like_sentencepiece(exported, sp_model):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(sp_model))
    text = "def value(self):\n    return items + 12"
    llm = open_llama(exported("f32"))
    try:
        got = llm.tokenize(text.encode(), add_bos=True, special=False)
    finally:
        llm.close()
    assert got == [sp.bos_id(), *sp.encode(text)]


def test_tied_embeddings_export_matches(tmp_path, sp_model, tokens):

    model = make_model(seed=1, tie_embeddings=True)
    ckpt = write_checkpoint(tmp_path / "tied", model, sp_model, None)
    out = tmp_path / "tied.gguf"
    export_gguf(ckpt, out, "f32", progress=False)
    names = {t.name for t in GGUFReader(out).tensors}
    assert _weight(MODEL_TENSOR.OUTPUT) not in names
    assert not set(FIM_KEYS) & set(GGUFReader(out).fields)
    assert _max_diff(out, model, tokens) < 1e-3
