"""Chat templates have a real budget: time, work and memory are bounded inside loops and
arithmetic, not only on output; a render out of budget is a TemplateError at once; and a
model's own template never reaches llama-cpp-python's template compiler."""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llamacode.runtime.config import EngineConfig
from llamacode.runtime.engine import Engine
from llamacode.runtime.errors import TemplateError
from llamacode.runtime.template import CHATML_TEMPLATE, MAX_RENDER_S, render_chat
from llamacode.runtime.template_worker import MEMORY_LIMIT_BYTES, shared_worker
from tests.fixtures.gguf_models import starcoder_vocab, write_tiny_gguf

# `make fuzz` raises LLAMACODE_FUZZ_EXAMPLES for a longer run. An example here may spend a
# whole render budget, so this target runs a tenth of the count the cheaper fuzz targets run.
FUZZ_EXAMPLES = int(os.environ.get("LLAMACODE_FUZZ_EXAMPLES", "400")) // 10
HI = [{"role": "user", "content": "hi"}]
SPIN = "{% set s = 'ab' * 50000 %}{% for c in s %}{% for d in s %}{% endfor %}{% endfor %}"
# A busy machine may be slow to answer once the budget is spent, never by whole seconds.
SLACK_S = 3.0


def rendered_within_budget(template: str) -> float:
    """Render ``template`` expecting TemplateError; the seconds it took."""
    started = time.monotonic()
    with pytest.raises(TemplateError):
        render_chat(template, HI)
    return time.monotonic() - started


def peak_kib(pid: int) -> int:
    """The peak resident memory of process ``pid`` so far."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize(
    "template",
    [
        # Loops that print nothing: no output, so no output check would ever stop them.
        SPIN,
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{% set x = f(60) %}",
        "{% for m in messages recursive %}{{ loop(messages) }}{% endfor %}",
    ],
    ids=["nested loops", "exponential macro", "recursive loop"],
)
def test_render_that_spins_is_stopped_when_its_time_is_up(template: str):
    assert rendered_within_budget(template) < MAX_RENDER_S + SLACK_S


@pytest.mark.parametrize(
    "template",
    [
        "{{ ((((10**64)**64)**64)**64)**64 }}",
        "{% set ns = namespace(x=7**64) %}{% for i in range(30) %}"
        "{% set ns.x = ns.x * ns.x %}{% endfor %}",
        "{{ 'x'|center(10**10) }}",
        "{{ '{:>9999999999}'.format('x') }}",
        "{% set s = 'x' * 1000 %}{{ s.replace('x', s).replace('x', s).replace('x', s) }}",
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        "{{ 'a' * 10**9 }}",
    ],
    ids=[
        "power tower",
        "repeated squaring",
        "center",
        "format width",
        "replace chain",
        "doubling string",
        "repeated constant",
    ],
)
def test_huge_integers_and_strings_are_a_template_error(template: str):
    assert rendered_within_budget(template) < MAX_RENDER_S + SLACK_S


def test_template_code_errors_are_template_errors():
    for template in [
        "{{ 1 / 0 }}",
        "{{ 1.5 ** 1000 ** 2 }}",
        "{{ messages[5]['content'] }}",
        "{{ x.y.z }}",
    ]:
        with pytest.raises(TemplateError):
            render_chat(template, HI)


def test_render_out_of_budget_frees_the_caller_and_the_next_render_works():
    worker = shared_worker()
    render_chat(CHATML_TEMPLATE, HI)
    first = worker.pid
    assert rendered_within_budget(SPIN) < MAX_RENDER_S + SLACK_S
    assert _zombie_or_gone(first)  # the spinning process was killed, not left running
    assert render_chat(CHATML_TEMPLATE, HI).endswith("<|im_start|>assistant\n")
    assert worker.pid != first


def test_renderer_that_dies_mid_render_is_a_template_error_and_is_replaced():
    worker = shared_worker()
    render_chat(CHATML_TEMPLATE, HI)
    doomed = worker.pid
    threading.Timer(0.5, os.kill, (doomed, signal.SIGKILL)).start()
    started = time.monotonic()
    with pytest.raises(TemplateError, match="renderer fail"):
        render_chat(SPIN, HI)
    assert time.monotonic() - started < MAX_RENDER_S
    assert render_chat(CHATML_TEMPLATE, HI).endswith("<|im_start|>assistant\n")
    assert worker.pid != doomed


def _zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return any(line.startswith("State:") and "Z" in line for line in status)
    except FileNotFoundError:
        return True


def test_renders_never_grow_this_process():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for template in ["{{ 'x'|center(10**8) }}", "{{ ('ab\\n' * 500)|indent(10**6) }}"]:
        with pytest.raises(TemplateError):
            render_chat(template, HI)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 50_000


# Fuzzing -------------------------------------------------------------------------------

_NUMBERS = st.one_of(st.integers(-3, 70), st.sampled_from([1000, 100_000, 10**6, 10**9, 2**62]))
_INT_NAMES = st.sampled_from(["i", "j", "n", "ns.n", "messages|length"])
_STR_NAMES = st.sampled_from(["t", "ns.s", "'ab'", "messages[0]['content']"])
_PRELUDE = (
    "{% set i = 1 %}{% set j = 2 %}{% set n = 3 %}{% set t = 'ab' %}"
    "{% set ns = namespace(s='x', n=2) %}"
)


@st.composite
def _int_expr(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        return draw(st.one_of(_NUMBERS.map(str), _INT_NAMES))
    if draw(st.integers(0, 4)) == 0:
        return f"({draw(_str_expr(depth + 1))})|length"
    op = draw(st.sampled_from(["+", "-", "*", "**", "//", "%"]))
    return f"({draw(_int_expr(depth + 1))} {op} {draw(_int_expr(depth + 1))})"


@st.composite
def _str_expr(draw: st.DrawFn, depth: int = 0) -> str:
    if depth > 2 or draw(st.booleans()):
        return draw(_STR_NAMES)
    left = draw(_str_expr(depth + 1))
    return draw(
        st.sampled_from(
            [
                f"({left} ~ {draw(_str_expr(depth + 1))})",
                f"({left} * {draw(_int_expr(depth + 1))})",
                f"({draw(_int_expr(depth + 1))})|string",
                f"{left}|center({draw(_int_expr(depth + 1))})",
                f"{left}|replace('a', {draw(_str_expr(depth + 1))})",
            ]
        )
    )


@st.composite
def _block(draw: st.DrawFn, depth: int = 0) -> str:
    """Output, assignments (a namespace carries values across iterations), loops, ifs."""
    kinds = ["output", "set", "grow", "for", "if"] if depth < 3 else ["output", "grow"]
    kind = draw(st.sampled_from(kinds))
    if kind == "output":
        return "{{ " + draw(st.one_of(_int_expr(), _str_expr())) + " }}"
    if kind == "set":
        return draw(
            st.sampled_from(
                [
                    "{% set n = " + draw(_int_expr()) + " %}",
                    "{% set t = " + draw(_str_expr()) + " %}",
                ]
            )
        )
    if kind == "grow":
        return draw(
            st.sampled_from(
                [
                    "{% set ns.n = " + draw(_int_expr()) + " %}",
                    "{% set ns.s = " + draw(_str_expr()) + " %}",
                ]
            )
        )
    body = "".join(draw(st.lists(_block(depth + 1), min_size=1, max_size=3)))
    if kind == "if":
        return "{% if " + draw(_int_expr()) + " > 1 %}" + body + "{% endif %}"
    source = draw(
        st.sampled_from(
            [
                f"i in range({draw(_int_expr())})",
                f"j in range({draw(_int_expr())})",
                f"c in {draw(_str_expr())}",
                "m in messages",
            ]
        )
    )
    return "{% for " + source + " %}" + body + "{% endfor %}"


@pytest.mark.slow
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(blocks=st.lists(_block(), min_size=1, max_size=4))
def test_fuzz_templates_with_loops_and_arithmetic_render_in_bounded_time_and_memory(blocks):
    template = _PRELUDE + "".join(blocks)
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    try:
        text = render_chat(template, HI * 3)
    except TemplateError:
        pass
    else:
        assert len(text) <= 1_000_000
    assert time.monotonic() - started < MAX_RENDER_S + SLACK_S
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - own_peak < 50_000
    pid = shared_worker().pid
    if pid is not None:
        assert peak_kib(pid) * 1024 < MEMORY_LIMIT_BYTES


# The model's own template ----------------------------------------------------------------


@pytest.fixture(scope="module")
def constant_template_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose chat template is a gigabyte-sized constant Jinja would fold."""
    path = tmp_path_factory.mktemp("gguf") / "huge-constant-template.gguf"
    return write_tiny_gguf(
        path, starcoder_vocab(), n_embd=32, n_head=2, chat_template="{{ 'a' * 10**9 }}"
    )


def test_model_template_never_reaches_llama_cpps_template_compiler(constant_template_gguf: Path):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    engine = Engine.load(constant_template_gguf, EngineConfig(n_ctx=256, n_threads=1))
    assert time.monotonic() - started < 10  # compiling the template costs about 20 s
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000
    assert engine.facts.chat_template == "{{ 'a' * 10**9 }}"
    assert not [key for key in engine._llm.metadata if key.startswith("tokenizer.chat_template")]
    started = time.monotonic()
    with pytest.raises(TemplateError):
        engine.chat(HI)
    assert time.monotonic() - started < MAX_RENDER_S + SLACK_S
