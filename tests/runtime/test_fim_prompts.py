"""FIM prompts are built as token ids, exactly as each family was trained."""

from __future__ import annotations

from pathlib import Path

import llama_cpp
import pytest

from llamacode.runtime.catalog import QWEN_05B
from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine
from llamacode.runtime.fim import (
    FimFamily,
    FimMode,
    FimTokens,
    detect_fim,
    fim_layout,
    prefix_only_layout,
)
from llamacode.runtime.models import catalog_path
from llamacode.runtime.types import ContextFile
from tests.fixtures.gguf_models import CODELLAMA_FIM, TinyVocab, codellama_vocab, write_tiny_gguf

PRE, SUF, MID, EOT = (CODELLAMA_FIM[k] for k in ("pre", "suf", "mid", "eot"))
BOS = 1


@pytest.fixture(scope="module")
def engine(codellama_gguf: Path) -> Engine:
    return Engine.load(codellama_gguf)


@pytest.fixture(scope="module")
def qwen_05b() -> Path:
    path = catalog_path(QWEN_05B)
    if not path.is_file():
        pytest.fail("run `llamacode models install qwen2.5-coder-0.5b` (make test does)")
    return path


def ids(vocab: TinyVocab, *pieces: str) -> list[int]:
    return [vocab.id(p) for p in pieces]


def test_codellama_psm_prompt_is_bos_pre_prefix_suf_suffix_mid(engine: Engine, cl_vocab: TinyVocab):
    prompt, mode = engine.infill_prompt(
        "def f", "return x", config=GenerationConfig(fim_mode=FimMode.PSM)
    )
    assert mode == "psm"
    assert prompt == [
        BOS,
        PRE,
        *ids(cl_vocab, "▁def", "▁f"),
        SUF,
        *ids(cl_vocab, "return", "▁x"),
        MID,
    ]


def test_codellama_spm_prompt_is_bos_pre_suf_suffix_mid_prefix(engine: Engine, cl_vocab: TinyVocab):
    prompt, mode = engine.infill_prompt(
        "def f", "return x", config=GenerationConfig(fim_mode=FimMode.SPM)
    )
    assert mode == "spm"
    assert prompt == [
        BOS,
        PRE,
        SUF,
        *ids(cl_vocab, "return", "▁x"),
        MID,
        *ids(cl_vocab, "▁def", "▁f"),
    ]


def test_suffix_drops_sentencepiece_leading_space_and_prefix_keeps_it(
    engine: Engine, cl_vocab: TinyVocab
):
    assert engine.tokenize("return") == ids(cl_vocab, "▁return")
    assert engine.tokenize_nospace("return") == ids(cl_vocab, "return")
    # A real leading space in the suffix survives as its own piece.
    assert engine.detokenize(engine.tokenize_nospace(" return")) == " return"
    assert engine.detokenize(engine.tokenize_nospace("\n    pass")) == "\n    pass"


def test_codellama_default_mode_is_spm(engine: Engine):
    assert engine.facts.default_fim_mode is FimMode.SPM
    assert engine.facts.rope_freq_base == 1_000_000.0


def test_fim_tokens_found_from_vocabulary_when_metadata_keys_are_missing(tmp_path: Path):
    vocab = codellama_vocab()
    path = write_tiny_gguf(tmp_path / "nokeys.gguf", vocab, write_fim_keys=False)
    engine = Engine.load(path)
    fim = engine.facts.fim
    assert fim == FimTokens(FimFamily.CODELLAMA, PRE, SUF, MID, EOT, BOS)
    # llama.cpp's own detection agrees with ours.
    vocab_ptr = engine._llm._model.vocab
    assert llama_cpp.llama_vocab_fim_pre(vocab_ptr) == PRE
    assert llama_cpp.llama_vocab_fim_mid(vocab_ptr) == MID


def test_starcoder_family_detected_without_bos_or_leading_space(starcoder_gguf: Path):
    engine = Engine.load(starcoder_gguf)
    fim = engine.facts.fim
    assert fim is not None and fim.family is FimFamily.STARCODER
    assert (fim.pre, fim.mid, fim.suf, fim.eot, fim.bos) == (1, 2, 3, 0, None)
    prompt, mode = engine.infill_prompt(
        "def", "print", config=GenerationConfig(fim_mode=FimMode.PSM)
    )
    assert mode == "psm"
    assert prompt == [1, *engine.tokenize("def"), 3, *engine.tokenize("print"), 2]
    assert engine.detokenize(engine.tokenize("def")) == "def"


def test_layouts_of_other_families_are_pure_functions_of_ids():
    qwen = FimTokens(FimFamily.QWEN, pre=10, suf=11, mid=12, eot=13)
    assert fim_layout(qwen, [1, 2], [3], FimMode.PSM) == [10, 1, 2, 11, 3, 12]
    codestral = FimTokens(FimFamily.CODESTRAL, pre=20, suf=21, mid=None, bos=1)
    assert fim_layout(codestral, [5], [6, 7]) == [1, 21, 6, 7, 20, 5]
    assert codestral.modes == (FimMode.SPM,)
    assert prefix_only_layout([4, 5], 1) == [1, 4, 5]


def test_detect_fim_knows_each_family_by_token_text():
    for texts, family in [
        (("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", "<|endoftext|>"), FimFamily.QWEN),
        (
            ("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>"),
            FimFamily.DEEPSEEK,
        ),
        (("[PREFIX]", "[SUFFIX]", "[MIDDLE]", "</s>"), FimFamily.CODESTRAL),
    ]:
        table = {t: i + 100 for i, t in enumerate(texts)}
        found = detect_fim(table.get, lambda i, t=texts: t[i - 100])
        assert found is not None and found.family is family
        assert (found.pre, found.suf, found.mid, found.eot) == (100, 101, 102, 103)
    assert detect_fim({}.get, lambda i: None) is None


def test_model_without_fim_tokens_infills_from_the_prefix_only(default_model: Path):
    engine = Engine.load(default_model)
    prompt, mode = engine.infill_prompt("def add(a, b):\n", "\n")
    assert mode == "prefix-only"
    assert prompt == engine.tokenize("def add(a, b):\n")


def test_qwen_prompts_name_other_files_in_its_repository_form(qwen_05b: Path):
    engine = Engine.load(qwen_05b, EngineConfig(n_ctx=512, n_threads=1))
    fim = engine.facts.fim
    assert fim is not None and fim.repo_name is not None and fim.file_sep is not None
    other = ContextFile("pkg/util.py", "def helper():\n    return 1\n")
    prompt, _ = engine.infill_prompt(
        "x = ", "\n", [other], GenerationConfig(fim_mode=FimMode.PSM), path="pkg/main.py"
    )
    text = engine._llm.detokenize(prompt, special=True).decode()
    assert text == (
        "<|repo_name|>pkg\n<|file_sep|>pkg/util.py\ndef helper():\n    return 1\n"
        "<|file_sep|>pkg/main.py\n<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>"
    )
    plain, _ = engine.infill_prompt("x = ", "\n", config=GenerationConfig(fim_mode=FimMode.PSM))
    assert plain[0] == fim.pre  # one file and no path: the plain FIM form
