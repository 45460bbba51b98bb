"""Long context: the key-retrieval generator and per-position perplexity from llama.cpp."""

from __future__ import annotations

import ast
import math
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from llamacode.runtime.config import EngineConfig
from llamacode.runtime.engine import Engine
from llamacode.training.evaluation.key_retrieval import (
    QUESTION,
    KeyRetrievalConfig,
    answer_value,
    build_key_prompt,
    evaluate_key_retrieval,
    filler_functions,
)
from llamacode.training.evaluation.perplexity import (
    LogitScorer,
    PerplexityConfig,
    evaluate_perplexity,
    position_buckets,
)

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def smol(default_model):
    """The default model, used here for its real BPE tokenizer."""
    engine = Engine.load(default_model, EngineConfig(n_ctx=256, n_threads=1))
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def functions():
    return filler_functions([STDLIB / "textwrap.py", STDLIB / "json", STDLIB / "shutil.py"])


@pytest.mark.parametrize(
    ("n", "depth"), [(2048, 0.0), (2048, 0.2), (2048, 0.4), (2048, 0.9), (512, 0.2)]
)
def test_key_lands_at_the_requested_depth(smol, functions, n, depth):
    prompt = build_key_prompt(functions, smol.count_tokens, n, depth, key=42, seed=3)
    assert 0.95 * n <= prompt.n_tokens <= n
    assert prompt.n_tokens == smol.count_tokens(prompt.text)
    # Filler functions are at most max(64, n/16) tokens, so the nearest boundary is close.
    half_chunk = max(64, n // 16) / 2
    assert abs(prompt.key_offset - depth * prompt.n_tokens) <= half_chunk + 0.01 * n
    before = prompt.text[: prompt.text.index("def my_function")]
    assert prompt.key_offset == smol.count_tokens(before) or not before
    assert prompt.text.count("def my_function") == 1
    assert "    return 42\n" in prompt.text
    assert prompt.text.endswith(QUESTION)
    ast.parse(prompt.text + "42")  # still valid Python


def test_small_uniform_functions_give_tight_placement(smol):
    functions = [f"def helper_{i}(value):\n    return value + {i}\n" for i in range(300)]
    for depth in (0.2, 0.4):
        prompt = build_key_prompt(functions, smol.count_tokens, 1024, depth, key=17)
        assert prompt.actual_depth == pytest.approx(depth, abs=0.02)
    zero = build_key_prompt(functions, smol.count_tokens, 1024, 0.0, key=17)
    assert zero.key_offset == 0 and zero.text.startswith("def my_function")


def test_generator_rejects_bad_depth_and_key(smol, functions):
    with pytest.raises(ValueError):
        build_key_prompt(functions, smol.count_tokens, 512, 1.5, key=42)
    with pytest.raises(ValueError):
        build_key_prompt(functions, smol.count_tokens, 512, 0.2, key=7)


def test_answer_value_reads_the_leading_number():
    assert answer_value(" 42\n") == 42
    assert answer_value("17, 3") == 17
    assert answer_value("x") is None


def test_key_retrieval_run_covers_every_cell(codellama_gguf):
    functions = [f"def f{i}(x):\n    return x\n" for i in range(50)]
    engine = Engine.load(codellama_gguf, EngineConfig(n_ctx=512, n_threads=1))
    try:
        config = KeyRetrievalConfig(lengths=(200, 400, 4096), depths=(0.0, 0.4), trials=2)
        summary, details = evaluate_key_retrieval(engine, functions, config, progress=False)
    finally:
        engine.close()
    # 4096 does not fit a 512-token context and is left out.
    assert [(c["length"], c["depth"], c["trials"]) for c in summary["cells"]] == [
        (200, 0.0, 2), (200, 0.4, 2), (400, 0.0, 2), (400, 0.4, 2)
    ]  # fmt: skip
    assert all(d["prompt_tokens"] <= d["length"] for d in details)
    assert all(0.0 <= c["accuracy"] <= 1.0 for c in summary["cells"])


def test_position_buckets_double_up_to_the_length():
    assert position_buckets(1000) == [(0, 64), (64, 128), (128, 256), (256, 512), (512, 1000)]


@pytest.mark.slow
def test_logprobs_match_llama_cpp_full_logits(default_model):
    import llama_cpp

    text = (STDLIB / "textwrap.py").read_text()[:600]
    scorer = LogitScorer(default_model, n_ctx=256, n_batch=32, n_threads=1)
    try:
        ids = scorer.tokenize(text)[:150]
        ours = scorer.logprobs(ids)
    finally:
        scorer.close()
    ref = llama_cpp.Llama(
        str(default_model), n_ctx=256, n_batch=256, logits_all=True, verbose=False
    )
    try:
        ref.eval(ids)
        logits = np.asarray(ref.scores[: len(ids) - 1], dtype=np.float64)
    finally:
        ref.close()
    peak = logits.max(axis=1, keepdims=True)
    lse = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
    expected = logits[np.arange(len(ids) - 1), ids[1:]] - lse
    assert ours.shape == (len(ids) - 1,)
    np.testing.assert_allclose(ours, expected, atol=2e-3)


@pytest.mark.slow
def test_perplexity_curve_counts_every_scored_token(default_model, tmp_path):
    (tmp_path / "a.py").write_text((STDLIB / "textwrap.py").read_text()[:3000])
    (tmp_path / "b.py").write_text((STDLIB / "bisect.py").read_text())
    (tmp_path / "tiny.py").write_text("x = 1\n")
    scorer = LogitScorer(default_model, n_ctx=256, n_batch=128, n_threads=1)
    try:
        config = PerplexityConfig(max_length=256, min_tokens=64)
        summary, details = evaluate_perplexity(scorer, [tmp_path], config, progress=False)
    finally:
        scorer.close()
    assert summary["files"] == 2  # tiny.py is too short
    assert sum(b["tokens"] for b in summary["buckets"]) == sum(d["tokens"] - 1 for d in details)
    assert all(math.isfinite(b["perplexity"]) and b["perplexity"] > 1 for b in summary["buckets"])
