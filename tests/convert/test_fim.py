"""FIM ids travel from the checkpoint into GGUF metadata, and fix-fim repairs files without them."""

from __future__ import annotations

from functools import partial

import llama_cpp
import numpy as np
import pytest
from gguf import GGUFReader

from llamacode.convert.errors import FimTokensNotFoundError
from llamacode.convert.fix_fim import fix_fim
from llamacode.convert.gguf_kv import numpy_shape, open_gguf, read_kv, read_tensor_bytes
from llamacode.convert.gguf_write import PlannedTensor, write_gguf
from llamacode.runtime.fim import FimFamily, FimMode, detect_fim, fim_layout
from llamacode.runtime.gguf_keys import Keys
from tests.convert.convert_helpers import gguf_tensors, open_llama

FIM_KEYS = [
    Keys.Tokenizer.FIM_PRE_ID,
    Keys.Tokenizer.FIM_SUF_ID,
    Keys.Tokenizer.FIM_MID_ID,
    Keys.Tokenizer.EOT_ID,
]


def _vocab_ids(llm) -> dict[str, int]:
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    return {
        "pre": llama_cpp.llama_vocab_fim_pre(vocab),
        "suf": llama_cpp.llama_vocab_fim_suf(vocab),
        "mid": llama_cpp.llama_vocab_fim_mid(vocab),
        "eot": llama_cpp.llama_vocab_eot(vocab),
        "eot_is_eog": llama_cpp.llama_vocab_is_eog(vocab, 6),
    }


def test_exported_fim_model_infills_with_ids_from_metadata(exported):
    llm = open_llama(exported("f32"))
    try:
        assert _vocab_ids(llm) == {"pre": 3, "suf": 4, "mid": 5, "eot": 6, "eot_is_eog": True}
        meta = llm.metadata
        texts = {i: llm.detokenize([i], special=True).decode() for i in range(8)}
        pre, suf, mid, eot = (int(meta[key]) for key in FIM_KEYS)
        fim = detect_fim(
            lambda text: next((i for i, t in texts.items() if t == text), None),
            texts.get,
            pre=pre,
            suf=suf,
            mid=mid,
            eot=eot,
            bos=llm.token_bos(),
        )
        assert fim is not None and fim.family is FimFamily.CODELLAMA
        prefix = llm.tokenize(b"def value(self):\n    ", add_bos=False)
        suffix = llm.tokenize(b"return x", add_bos=False)
        prompt = fim_layout(fim, prefix, suffix, FimMode.PSM)
        assert prompt[:2] == [1, 3] and prompt[-1] == 5
        vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        middle = []
        for tok in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            if llama_cpp.llama_vocab_is_eog(vocab, tok) or len(middle) == 8:
                break
            middle.append(tok)
        assert all(0 <= t < llm.n_vocab() for t in middle)
        assert np.isfinite(np.array(llm.scores[: len(prompt)])).all()
    finally:
        llm.close()


def _rewrite(src, dst, drop=(), rename=None) -> None:
    reader = open_gguf(src)
    kvs = {k: v for k, v in read_kv(reader).items() if k not in drop}
    if rename:
        tokens = kvs[Keys.Tokenizer.LIST]
        values = [rename.get(t.decode(), t.decode()).encode() for t in tokens.value]
        kvs[Keys.Tokenizer.LIST] = type(tokens)(values, tokens.type, tokens.sub_type)
    tensors = [
        PlannedTensor(t.name, numpy_shape(t), t.tensor_type, partial(read_tensor_bytes, src, t))
        for t in reader.tensors
    ]
    write_gguf(dst, kvs, tensors, progress=False)


def test_fix_fim_restores_missing_keys_and_keeps_tensors(exported, tmp_path):
    stripped = tmp_path / "published.gguf"
    _rewrite(exported("q8_0"), stripped, drop=FIM_KEYS)
    assert not set(FIM_KEYS) & set(GGUFReader(stripped).fields)
    fixed = tmp_path / "fixed.gguf"
    fim, added = fix_fim(stripped, fixed, progress=False)
    assert (fim.pre, fim.suf, fim.mid, fim.eot) == (3, 4, 5, 6)
    assert sorted(added) == sorted(FIM_KEYS)
    fields = GGUFReader(fixed).fields
    assert [fields[k].contents() for k in FIM_KEYS] == [3, 4, 5, 6]
    assert gguf_tensors(fixed) == gguf_tensors(stripped)
    llm = open_llama(fixed)
    try:
        assert _vocab_ids(llm) == {"pre": 3, "suf": 4, "mid": 5, "eot": 6, "eot_is_eog": True}
    finally:
        llm.close()


def test_fix_fim_refuses_vocabulary_without_fim_pieces(exported, tmp_path):
    plain = tmp_path / "plain.gguf"
    pieces = {"▁<PRE>": "▁<A>", "▁<SUF>": "▁<B>", "▁<MID>": "▁<C>", "▁<EOT>": "▁<D>"}
    _rewrite(exported("q8_0"), plain, drop=FIM_KEYS, rename=pieces)
    out = tmp_path / "out.gguf"
    with pytest.raises(FimTokensNotFoundError, match=r"plain\.gguf"):
        fix_fim(plain, out, progress=False)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.gguf"]
