"""KV reuse past the first difference, through real llama.cpp: PSM typing in the prefix keeps
the suffix cached, shifted into its new positions."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine
from llamacode.runtime.fim import FimMode
from llamacode.runtime.models import catalog_path
from llamacode.runtime.types import CancelToken
from tests.fixtures.gguf_models import TinyVocab, write_tiny_gguf

PSM = GenerationConfig(max_tokens=8, fim_mode=FimMode.PSM)
PREFIX = "def add(x, y):\n    return x + y\n\n\ndef f(x):\n    "
SUFFIX = "\n    return result\n\n\nprint(f(1))\nfor x in range(10):\n    print(add(x, x))\n" * 2


def _engine(model: Path, min_chunk: int, **kwargs: int) -> Engine:
    config = EngineConfig(n_ctx=1024, n_threads=1, cache_reuse_min_chunk=min_chunk, **kwargs)
    return Engine.load(model, config)


@pytest.fixture(scope="module")
def attentive_gguf(tmp_path_factory: pytest.TempPathFactory, cl_vocab: TinyVocab) -> Path:
    """One layer with sharp attention: its logits depend on where each cached key sits.

    With one layer, a token's keys and values depend only on the token and its position,
    so a chunk shifted to new positions must give exactly what a fresh evaluation gives.
    """
    path = write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "attentive.gguf", cl_vocab)
    reader = gguf.GGUFReader(str(path), "r+")
    for tensor in reader.tensors:
        if tensor.name.endswith(("attn_q.weight", "attn_k.weight")):
            tensor.data[...] *= 8.0
        elif tensor.name.endswith(("attn_v.weight", "attn_output.weight")):
            tensor.data[...] *= 20.0
    del reader
    return path


def _logits_after(engine: Engine, ids: list[int]) -> np.ndarray:
    engine.generate(ids, GenerationConfig(max_tokens=1))
    return engine._last_logits().copy()


def test_inserting_in_the_prefix_evaluates_the_edit_not_the_suffix(codellama_gguf: Path):
    engine = _engine(codellama_gguf, min_chunk=16)
    fresh = _engine(codellama_gguf, min_chunk=0)
    first = engine.infill(PREFIX, SUFFIX, config=PSM)
    assert first.evaluated_tokens == first.prompt_tokens
    for typed in ("r", "re", "res"):
        again = engine.infill(PREFIX + typed, SUFFIX, config=PSM)
        assert again.evaluated_tokens <= 3  # the retokenized word and <MID>
        assert again.reused_tokens + again.evaluated_tokens == again.prompt_tokens
        fresh._llm.n_tokens = 0
        reference = fresh.infill(PREFIX + typed, SUFFIX, config=PSM)
        assert reference.evaluated_tokens == reference.prompt_tokens
        assert again.text == reference.text == " return x + y"
    stats = engine.stats
    assert stats.evaluated_tokens + stats.reused_tokens == stats.prompt_tokens


def test_min_chunk_zero_evaluates_everything_after_the_edit(codellama_gguf: Path):
    engine = _engine(codellama_gguf, min_chunk=0)
    engine.infill(PREFIX, SUFFIX, config=PSM)
    again = engine.infill(PREFIX + "r", SUFFIX, config=PSM)
    assert again.evaluated_tokens > len(engine.tokenize(SUFFIX))


def test_shifted_chunks_compute_what_a_fresh_evaluation_computes(attentive_gguf: Path):
    engine = _engine(attentive_gguf, min_chunk=4)
    fresh = _engine(attentive_gguf, min_chunk=0)
    before, _ = engine.infill_prompt(PREFIX, SUFFIX, config=PSM)
    edits = {
        "insert at the cursor": (PREFIX + "result = x", SUFFIX),
        "delete at the cursor": (PREFIX[:-5], SUFFIX),
        "replace early": (PREFIX.replace("add(x, y)", "add(a, y)"), SUFFIX),
        "edit the suffix": (PREFIX, SUFFIX.replace("print(f(1))", "print(f(2), f(3))")),
    }
    for name, (prefix, suffix) in edits.items():
        after, _ = engine.infill_prompt(prefix, suffix, config=PSM)
        original = _logits_after(engine, before)
        reused = _logits_after(engine, after)
        result = engine.generate(after, GenerationConfig(max_tokens=1))
        assert result.reused_tokens > 40, name
        fresh._llm.n_tokens = 0
        expected = _logits_after(fresh, after)
        assert np.abs(original - expected).max() > 0.01, name  # the edit matters
        assert np.abs(reused - expected).max() < 1e-3, name


class _CancelAfter(CancelToken):
    """Cancelled from the ``n``-th time the engine looks (once before the prompt, then before
    each batch of it)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.left = n

    @property
    def cancelled(self) -> bool:
        self.left -= 1
        return self.left <= 0


def test_cancelling_between_chunks_leaves_a_cache_the_next_request_can_trust(
    attentive_gguf: Path,
):
    engine = _engine(attentive_gguf, min_chunk=4, n_batch=4)
    fresh = _engine(attentive_gguf, min_chunk=0)
    before, _ = engine.infill_prompt(PREFIX, SUFFIX, config=PSM)
    # Edits at both ends of the suffix: gaps before, between and after reused chunks.
    after, _ = engine.infill_prompt(
        PREFIX + "result = x + y + x", SUFFIX.replace("range(10)", "range(12)"), config=PSM
    )
    mid_prompt = 0
    for n in range(3, 30):
        engine.generate(before, GenerationConfig(max_tokens=1))
        cancelled = engine.generate(after, GenerationConfig(max_tokens=1), cancel=_CancelAfter(n))
        if cancelled.stop_reason != "cancelled":
            break  # n is past the prompt's last batch
        assert cancelled.evaluated_tokens > 0
        mid_prompt += cancelled.reused_tokens + cancelled.evaluated_tokens < len(after)
        fresh._llm.n_tokens = 0
        assert np.abs(_logits_after(engine, after) - _logits_after(fresh, after)).max() < 1e-3
    assert mid_prompt >= 3


@pytest.fixture(scope="module")
def qwen_05b() -> Path:
    path = catalog_path("qwen2.5-coder-0.5b")
    if not path.is_file():
        pytest.fail("Qwen2.5-Coder 0.5B is not installed: run `llamacode models install "
                    "qwen2.5-coder-0.5b`")  # fmt: skip
    return path


@pytest.mark.slow
def test_typing_in_the_prefix_of_a_real_model_keeps_the_suffix_cached(qwen_05b: Path):
    source = (Path(__file__).resolve().parents[2] / "runtime" / "sampling.py").read_text()
    cursor = source.index("        if self.temperature <= 0.0:") + len("        if")
    prefix, suffix = source[:cursor], source[cursor:]
    engine = _engine(qwen_05b, min_chunk=16)
    config = GenerationConfig(max_tokens=4, fim_mode=FimMode.PSM)
    engine.infill(prefix, suffix, config=config)
    suffix_tokens = len(engine.tokenize_nospace(suffix))
    for typed in (" ", " s", " se"):
        result = engine.infill(prefix + typed, suffix, config=config)
        assert result.evaluated_tokens <= 6, typed
        assert result.reused_tokens >= suffix_tokens
        assert result.reused_tokens + result.evaluated_tokens == result.prompt_tokens
