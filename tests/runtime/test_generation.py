"""Generation through real llama.cpp: stop rules, KV-cache reuse, cancellation, chat."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llamacode.runtime.config import GenerationConfig
from llamacode.runtime.engine import CancelToken, Engine
from llamacode.runtime.suggest import suggest
from llamacode.runtime.trim import CursorContext, Trim
from llamacode.runtime.types import SuggestRequest, SuggestSettings


@pytest.fixture(scope="module")
def engine(codellama_gguf: Path) -> Engine:
    return Engine.load(codellama_gguf)


@pytest.fixture(scope="module")
def loop_engine(codellama_loop_gguf: Path) -> Engine:
    return Engine.load(codellama_loop_gguf)


def test_infill_stops_at_end_of_infill_token(engine: Engine):
    result = engine.infill("def f(x, y):\n    ", "\n")
    assert result.text == " return x + y"
    assert result.stop_reason == "eot"
    assert result.generated_tokens == 5  # four pieces, then EOT


def test_max_tokens_limits_a_generation_that_never_ends(loop_engine: Engine):
    result = loop_engine.complete("x", GenerationConfig(max_tokens=7))
    assert result.stop_reason == "max_tokens"
    assert result.generated_tokens == 7
    assert result.text.split() == ["y", "x", "y", "x", "y", "x", "y"]


def test_stop_string_cuts_the_text_before_it(loop_engine: Engine):
    result = loop_engine.complete("x", GenerationConfig(max_tokens=50, stop=("x y",)))
    assert result.stop_reason == "stop"
    assert result.text == " y "


def test_time_budget_stops_generation(loop_engine: Engine):
    result = loop_engine.complete("x", GenerationConfig(max_tokens=100_000, time_budget_s=0.05))
    assert result.stop_reason == "time"
    assert result.generated_tokens < 100_000


def test_cancellation_between_tokens_stops_within_a_token(loop_engine: Engine):
    cancel = CancelToken()
    chunks: list[str] = []

    def on_text(chunk: str) -> None:
        chunks.append(chunk)
        if len(chunks) == 5:
            cancel.cancel()

    result = loop_engine.complete(
        "x", GenerationConfig(max_tokens=10_000), cancel=cancel, on_text=on_text
    )
    assert result.stop_reason == "cancelled"
    assert result.generated_tokens <= 6


def test_cancelled_request_never_reaches_the_model(loop_engine: Engine):
    before = loop_engine.stats.evaluated_tokens
    cancel = CancelToken()
    cancel.cancel()
    result = loop_engine.infill("x y", "", cancel=cancel)
    assert result.stop_reason == "cancelled"
    assert result.evaluated_tokens == 0 and result.generated_tokens == 0
    assert loop_engine.stats.evaluated_tokens == before
    assert loop_engine.stats.cancelled_before_start >= 1


def test_appending_one_character_reevaluates_only_a_few_tokens(engine: Engine):
    prefix = "def f(x, y):\n    value = x\n    result = y\n    " * 20
    first = engine.infill(prefix, "\n\nprint(f(1, 2))\n")
    second = engine.infill(prefix + "r", "\n\nprint(f(1, 2))\n")
    assert first.prompt_tokens > 200
    assert second.reused_tokens >= second.prompt_tokens - 3
    assert second.evaluated_tokens <= 3


def test_identical_request_reuses_all_but_one_token(engine: Engine):
    engine.infill("def f(x):\n    ", "\n")
    again = engine.infill("def f(x):\n    ", "\n")
    assert again.evaluated_tokens == 1
    assert again.text == " return x + y"


def test_suggestion_stops_at_a_line_indented_less_than_the_cursor(tmp_path: Path, cl_vocab):
    from tests.fixtures.gguf_models import chain, write_tiny_gguf

    v = cl_vocab
    # " = y" NEWLINE "def f (": the model leaves the function body.
    tokens = [v.id("▁="), v.id("▁y"), v.id("<0x0A>"), v.id("def")]
    script = chain([*tokens, v.id("▁f"), v.id("▁(")])
    model = write_tiny_gguf(tmp_path / "dedent.gguf", v, script=script, default_next=tokens[0])
    engine = Engine.load(model)
    text = "def g():\n    y"
    result = suggest(engine, SuggestRequest(text, len(text)), SuggestSettings(max_tokens=30))
    assert result.texts == (" = y",)
    assert result.generations[0].stop_reason == "dedent"
    assert result.generations[0].generated_tokens == len(tokens)  # stopped at "def"


def test_one_line_wanted_stops_at_the_newline(tmp_path: Path, cl_vocab):
    from tests.fixtures.gguf_models import chain, write_tiny_gguf

    v = cl_vocab
    script = chain([v.id("▁return"), v.id("▁x"), v.id("<0x0A>"), v.id("▁▁▁▁"), v.id("pass")])
    model = write_tiny_gguf(tmp_path / "lines.gguf", v, script=script, default_next=v.id("▁return"))
    engine = Engine.load(model)
    request = SuggestRequest("x = foo(a)\n", len("x = foo("))
    result = suggest(engine, request, SuggestSettings(line_policy="single"))
    assert result.generations[0].stop_reason == "newline"
    assert result.texts == (" return x",)


def test_async_calls_run_off_the_event_loop(engine: Engine):
    import threading

    threads: set[str] = set()

    def on_text(_: str) -> None:
        threads.add(threading.current_thread().name)

    async def main() -> list[str]:
        results = await asyncio.gather(
            engine.ainfill("def f(x):\n    ", "\n", on_text=on_text),
            engine.acomplete("def", on_text=on_text),
        )
        return [r.prompt_mode for r in results]

    assert asyncio.run(main()) == ["spm", "completion"]
    assert threads and all(name.startswith("llamacode-engine") for name in threads)


def test_default_model_answers_a_chat(default_model: Path):
    engine = Engine.load(default_model)
    streamed: list[str] = []
    result = engine.chat(
        [{"role": "user", "content": "Write a Python function named add that adds two numbers."}],
        GenerationConfig(max_tokens=80),
        on_text=streamed.append,
    )
    assert "def add" in result.text
    assert "".join(streamed) == result.text
    assert result.stop_reason in ("eos", "eot", "max_tokens")


def test_default_model_completes_code(default_model: Path):
    engine = Engine.load(default_model)
    result = engine.infill(
        "def is_even(n: int) -> bool:\n    ", "\n", config=GenerationConfig(max_tokens=24)
    )
    assert "return" in result.text
    assert result.prompt_mode == "prefix-only"


def test_streamed_text_equals_the_final_text_when_a_dedent_cuts_it(tmp_path: Path, cl_vocab):
    from tests.fixtures.gguf_models import chain, write_tiny_gguf

    v = cl_vocab
    newline = v.id("<0x0A>")
    script = chain([v.id("▁return"), v.id("▁x"), newline, v.id("def"), v.id("▁f"), v.id("▁(")])
    model = write_tiny_gguf(
        tmp_path / "dedent.gguf", v, script=script, default_next=v.id("▁return")
    )
    engine = Engine.load(model)
    prefix = "def g():\n    "
    ids, mode = engine.infill_prompt(prefix, "")
    rules = Trim(CursorContext.from_text(prefix, ""), "", single_line=False)
    streamed: list[str] = []
    result = engine.generate(ids, on_text=streamed.append, cut=rules.cut, mode=mode)
    assert result.stop_reason == "dedent"
    assert "".join(streamed) == result.text == " return x"
