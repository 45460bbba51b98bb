"""Broken files and bad settings become typed errors with a next step, never crashes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine
from llamacode.runtime.errors import (
    ConfigError,
    InsufficientMemoryError,
    InvalidModelError,
    ModelLoadError,
    ModelNotFoundError,
    TemplateError,
)
from llamacode.runtime.gguf_file import read_header
from llamacode.runtime.template import render_chat
from tests.fixtures.gguf_models import starcoder_vocab, write_tiny_gguf


def test_missing_file_is_model_not_found(tmp_path: Path):
    with pytest.raises(ModelNotFoundError, match="llamacode models"):
        Engine.load(tmp_path / "nope.gguf")


def test_file_that_is_not_gguf_is_invalid_model(tmp_path: Path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 100)
    with pytest.raises(InvalidModelError, match="not a GGUF"):
        Engine.load(path)


def test_truncated_gguf_is_invalid_model(tmp_path: Path, codellama_gguf: Path):
    path = tmp_path / "cut.gguf"
    path.write_bytes(codellama_gguf.read_bytes()[:200_000])
    with pytest.raises(InvalidModelError, match="truncated or corrupt"):
        Engine.load(path)


def test_unsupported_version_and_absurd_counts_are_refused(tmp_path: Path):
    path = tmp_path / "v9.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 9, 0, 0))
    with pytest.raises(InvalidModelError, match="version 9"):
        read_header(path)
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 2**40, 0))
    with pytest.raises(InvalidModelError, match="tensors"):
        read_header(path)
    huge_key = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**62)
    path.write_bytes(huge_key)
    with pytest.raises(InvalidModelError, match="length"):
        read_header(path)


def test_gguf_that_llama_cpp_refuses_is_model_load_error(tmp_path: Path):
    import gguf

    path = tmp_path / "weird.gguf"
    writer = gguf.GGUFWriter(str(path), "no-such-architecture")
    writer.add_tensor("token_embd.weight", __import__("numpy").zeros((4, 8), dtype="float32"))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelLoadError, match="could not load"):
        Engine.load(path)


def test_context_that_cannot_fit_in_memory_is_refused_before_loading(codellama_gguf: Path):
    with pytest.raises(InsufficientMemoryError, match="smaller --ctx"):
        Engine.load(codellama_gguf, EngineConfig(n_ctx=2_000_000_000))


def test_quantized_v_cache_without_flash_attention_is_a_config_error(codellama_gguf: Path):
    with pytest.raises(ConfigError, match="flash attention"):
        Engine.load(codellama_gguf, EngineConfig(type_k="q8_0", type_v="q8_0"))


def test_quantized_kv_cache_with_flash_attention_loads(
    tmp_path: Path, codellama_gguf: Path, cl_vocab
):
    q8 = EngineConfig(type_k="q8_0", type_v="q8_0", flash_attn=True)
    with pytest.raises(ConfigError, match="do not divide"):
        Engine.load(codellama_gguf, q8)  # heads of 16 values; q8_0 blocks hold 32
    wide_heads = write_tiny_gguf(tmp_path / "h32.gguf", cl_vocab, n_head=2)
    engine = Engine.load(wide_heads, q8)
    assert (
        engine.infill(
            "def f(x, y):\n    ", "\n", config=GenerationConfig(max_tokens=3)
        ).generated_tokens
        > 0
    )


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.system('true') }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ messages.__class__.__base__ }}",
    ],
)
def test_template_injection_is_refused(template: str):
    with pytest.raises(TemplateError):
        render_chat(template, [{"role": "user", "content": "hi"}])


def test_template_with_a_huge_loop_is_stopped():
    template = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateError, match="too much work"):
        render_chat(template, [{"role": "user", "content": "hi"}])
    with pytest.raises(TemplateError):
        render_chat("{{ 'x' * 10**9 }}", [{"role": "user", "content": "hi"}])


def test_template_renders_messages_and_generation_prompt():
    from llamacode.runtime.template import CHATML_TEMPLATE

    text = render_chat(CHATML_TEMPLATE, [{"role": "user", "content": "hi"}])
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_chat_with_a_hostile_template_raises_template_error(tmp_path: Path):
    path = write_tiny_gguf(
        tmp_path / "evil.gguf", starcoder_vocab(), chat_template="{{ ''.__class__.__mro__ }}"
    )
    engine = Engine.load(path)
    with pytest.raises(TemplateError):
        engine.chat([{"role": "user", "content": "hi"}])
