"""Text the engine is handed as it comes: an empty prefix and lone UTF-16 surrogates (JSON
escapes such as "\\ud800" decode to them) are prompts like any other, not crashes."""

from __future__ import annotations

import pytest

from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine
from tests.fixtures.gguf_models import starcoder_vocab, write_tiny_gguf

ONE_TOKEN = GenerationConfig(max_tokens=1)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """A byte-level BPE model that adds no BOS of its own (like SmolLM2)."""
    path = tmp_path_factory.mktemp("gguf") / "tiny-no-bos.gguf"
    vocab = starcoder_vocab()
    assert not vocab.add_bos
    return Engine.load(write_tiny_gguf(path, vocab, n_embd=32, n_head=2), EngineConfig(n_ctx=128))


@pytest.fixture(scope="module")
def prefix_only_engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    """The same without FIM tokens, so infill completes from the prefix only."""
    vocab = starcoder_vocab()
    for i, text in enumerate(vocab.tokens):
        if text.startswith("<fim_"):
            vocab.tokens[i] = text.replace("fim", "unused")
    vocab.fim = {}
    path = tmp_path_factory.mktemp("gguf") / "tiny-no-fim.gguf"
    engine = Engine.load(write_tiny_gguf(path, vocab, n_embd=32, n_head=2), EngineConfig(n_ctx=128))
    assert engine.facts.fim is None
    return engine


def test_completion_of_an_empty_prefix_starts_from_the_start_token(engine: Engine):
    result = engine.complete("", ONE_TOKEN)
    assert result.prompt_tokens == 1 and result.generated_tokens == 1


def test_prefix_only_infill_at_the_start_of_a_file(prefix_only_engine: Engine):
    ids, mode = prefix_only_engine.infill_prompt("", "def f():\n")
    assert mode == "prefix-only" and ids == [prefix_only_engine.facts.bos]
    assert prefix_only_engine.infill("", "def f():\n", config=ONE_TOKEN).generated_tokens == 1


def test_lone_surrogates_tokenize_as_replacement_characters(engine: Engine):
    assert engine.tokenize("a\ud800b\udfff") == engine.tokenize("a\ufffdb\ufffd")
    assert engine.infill("x = '\udc80'\n", "\n", config=ONE_TOKEN).generated_tokens == 1
    chat = engine.chat([{"role": "user", "content": "caf\ud83d"}], ONE_TOKEN)
    assert chat.generated_tokens == 1
