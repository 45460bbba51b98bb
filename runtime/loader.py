"""Turning checked model facts and settings into a llama.cpp model, with typed failures."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from llamacode.runtime.config import DEFAULT_CTX_CAP, KV_CACHE_TYPES, LONG_CONTEXT, EngineConfig
from llamacode.runtime.errors import (
    AdapterError,
    ConfigError,
    InsufficientMemoryError,
    ModelLoadError,
)
from llamacode.runtime.fim import FimFamily
from llamacode.runtime.model_facts import ModelFacts

log = logging.getLogger("llamacode.runtime")

CODELLAMA_ROPE_BASE = 1_000_000.0
# Compute buffers, the logits row and llama.cpp's own bookkeeping, on top of weights + KV.
_OVERHEAD_BYTES = 256 * 1024 * 1024
KV_BYTES_PER_VALUE = {
    "f32": 4.0,
    "f16": 2.0,
    "bf16": 2.0,
    "q8_0": 1.0625,
    "q4_0": 0.5625,
    "q4_1": 0.625,
    "q5_0": 0.6875,
    "q5_1": 0.75,
    "iq4_nl": 0.5625,
}


def choose_n_ctx(facts: ModelFacts, config: EngineConfig) -> int:
    """The context to allocate: what was asked, else what the model was trained for, capped."""
    if config.n_ctx > 0:
        if facts.n_ctx_train and config.n_ctx > facts.n_ctx_train:
            log.warning(
                "context %d is longer than %s was trained for (%d); quality may drop",
                config.n_ctx,
                facts.name,
                facts.n_ctx_train,
            )
        return config.n_ctx
    return min(facts.n_ctx_train or 4096, DEFAULT_CTX_CAP)


def kv_overrides_for(
    facts: ModelFacts, config: EngineConfig
) -> dict[str, bool | int | float | str]:
    """Metadata a published file lacks but llama.cpp needs (the user's overrides win)."""
    overrides: dict[str, bool | int | float | str] = {}
    fim = facts.fim
    if fim is not None and fim.eot is not None and facts.eot is None:
        overrides["tokenizer.ggml.eot_token_id"] = fim.eot
    overrides.update(config.kv_overrides)
    return overrides


def rope_base_override(facts: ModelFacts) -> float:
    """Code Llama needs a RoPE base of 1e6; llama.cpp assumes 1e4 when the key is missing."""
    if not facts.rope_freq_base_stated and facts.fim and facts.fim.family is FimFamily.CODELLAMA:
        log.warning(
            "%s has no rope.freq_base; using Code Llama's 1e6 instead of llama.cpp's 1e4",
            facts.name,
        )
        return CODELLAMA_ROPE_BASE
    return 0.0


def _ggml_type(name: str) -> int:
    import llama_cpp

    if name not in KV_CACHE_TYPES:
        raise ConfigError(
            f"unknown KV-cache type {name!r}; choose one of: {', '.join(KV_CACHE_TYPES)}"
        )
    return int(getattr(llama_cpp, f"GGML_TYPE_{name.upper()}"))


@dataclass(frozen=True)
class LoadPlan:
    """The settings a model is loaded with, and why each was chosen."""

    n_ctx: int
    n_gpu_layers: int
    flash_attn: bool
    type_k: str
    type_v: str
    reasons: list[str] = field(default_factory=list)


def gpu_offload_supported() -> bool:
    """Whether this llama.cpp build can run layers on a GPU (CUDA, Metal, Vulkan, ...)."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def plan_load(facts: ModelFacts, config: EngineConfig, gpu: bool | None = None) -> LoadPlan:
    """Fill in what ``config`` leaves open, from the model and the llama.cpp build."""
    gpu = gpu_offload_supported() if gpu is None else gpu
    reasons: list[str] = []
    n_ctx = choose_n_ctx(facts, config)
    if config.n_ctx <= 0:
        reasons.append(f"context {n_ctx}: the model's trained context, capped at {DEFAULT_CTX_CAP}")
    layers = config.n_gpu_layers
    if layers is None:
        layers = -1 if gpu else 0
        reasons.append(
            "all layers on the GPU" if gpu else "CPU only: this llama.cpp build has no GPU support"
        )
    flash = config.flash_attn
    if flash is None:
        flash = gpu and layers != 0
        if flash:
            reasons.append("flash attention on (GPU)")
    long_gpu_context = flash and n_ctx > LONG_CONTEXT
    type_k = config.type_k or ("q8_0" if long_gpu_context else "f16")
    type_v = config.type_v or ("q8_0" if long_gpu_context else "f16")
    if long_gpu_context and (config.type_k is None or config.type_v is None):
        reasons.append(f"q8_0 KV cache: a context over {LONG_CONTEXT} tokens on the GPU")
    return LoadPlan(n_ctx, layers, flash, type_k, type_v, reasons)


def check_kv_block(facts: ModelFacts, plan: LoadPlan) -> None:
    """Quantized KV caches store whole blocks, which must tile each attention head."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    head_dim = facts.n_embd // max(facts.n_head, 1)
    for name in {plan.type_k, plan.type_v}:
        block, _ = GGML_QUANT_SIZES[GGMLQuantizationType[name.upper()]]
        if head_dim % block:
            raise ConfigError(
                f"a {name} KV cache stores blocks of {block} values, which do not divide "
                f"{facts.name}'s attention heads of {head_dim}; use --cache-type-k/-v f16"
            )


def check_memory(facts: ModelFacts, plan: LoadPlan) -> None:
    """Refuse a CPU load that cannot fit, before llama.cpp tries and the OS kills us."""
    available = _mem_available()
    if available is None or plan.n_gpu_layers != 0:
        return
    n_ctx = plan.n_ctx
    per_value = (KV_BYTES_PER_VALUE[plan.type_k] + KV_BYTES_PER_VALUE[plan.type_v]) / 2
    need = facts.size_bytes + facts.kv_cache_bytes(n_ctx, per_value) + _OVERHEAD_BYTES
    if need > available:
        raise InsufficientMemoryError(
            f"{facts.name} with a {n_ctx}-token context needs about {need / 2**30:.1f} GiB, but "
            f"only {available / 2**30:.1f} GiB is free. Use a smaller --ctx, a quantized KV cache "
            "(--cache-type q8_0 with --flash-attn), or a smaller quantization of the model."
        )


def _mem_available() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@cache
def _template_free_llama() -> type:
    import llama_cpp
    from gguf.constants import Keys

    class TemplateFreeLlama(llama_cpp.Llama):
        """``llama_cpp.Llama`` that never sees the model's chat templates.

        ``Llama()`` compiles every ``tokenizer.chat_template*`` value of the file's metadata
        with Jinja as it loads, outside any budget, and Jinja folds constants while it
        compiles: ``{{ 'a' * 10**9 }}`` would cost seconds and gigabytes in every verb.
        llamacode renders the template itself (runtime.template, read from the header by
        runtime.model_facts), so the metadata this object keeps has no templates in it.
        """

        @property
        def metadata(self) -> dict[str, str]:
            return self._metadata_without_templates

        @metadata.setter
        def metadata(self, values: dict[str, str]) -> None:
            self._metadata_without_templates = {
                key: value
                for key, value in values.items()
                if not key.startswith(Keys.Tokenizer.CHAT_TEMPLATE)
            }

    return TemplateFreeLlama


class _LlamaLog:
    """llama.cpp's log, shown only with --verbose.

    llama-cpp-python filters it by level, but llama.cpp reports some harmless conditions at
    error level (a LoRA tensor that cannot use the CPU's repacked buffers, a dozen lines per
    load); failures reach the user as llamacode's own errors, which point to --verbose.
    """

    def __init__(self) -> None:
        import ctypes
        import sys

        import llama_cpp

        self.verbose = False

        @llama_cpp.llama_log_callback
        def callback(level: int, text: bytes, user_data: Any) -> None:
            if self.verbose:
                sys.stderr.write(text.decode("utf-8", "replace"))

        self._callback = callback  # llama.cpp holds only a pointer to it
        llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


@cache
def _llama_log() -> _LlamaLog:
    return _LlamaLog()


def load_llama(facts: ModelFacts, config: EngineConfig) -> tuple[Any, LoadPlan]:
    """Load ``facts.path`` into llama.cpp with settings planned from the facts and ``config``."""
    plan = plan_load(facts, config)
    type_k, type_v = _ggml_type(plan.type_k), _ggml_type(plan.type_v)
    if plan.type_v not in ("f32", "f16", "bf16") and not plan.flash_attn:
        raise ConfigError(
            f"a {plan.type_v} V cache needs flash attention: add --flash-attn, or keep the "
            "KV cache at f16"
        )
    check_kv_block(facts, plan)
    if config.check_memory:
        check_memory(facts, plan)
    _llama_log().verbose = config.verbose
    try:
        llm = _template_free_llama()(
            str(facts.path),
            n_ctx=plan.n_ctx,
            n_batch=min(config.n_batch, plan.n_ctx),
            n_ubatch=min(config.n_batch, plan.n_ctx),
            n_threads=config.n_threads,
            n_threads_batch=config.n_threads,
            n_gpu_layers=plan.n_gpu_layers,
            flash_attn=plan.flash_attn,
            type_k=type_k,
            type_v=type_v,
            kv_overrides=kv_overrides_for(facts, config) or None,
            rope_freq_base=rope_base_override(facts),
            seed=config.seed,
            logits_all=False,
            lora_path=config.adapter_path,
            lora_scale=config.adapter_scale,
            verbose=config.verbose,
        )
    except RuntimeError as exc:
        if config.adapter_path and "LoRA" in str(exc):
            raise AdapterError(
                f"llama.cpp could not apply the LoRA adapter {config.adapter_path} to "
                f"{facts.path}: {exc}. Run with --verbose to see llama.cpp's reason."
            ) from exc
        raise _load_error(facts, exc) from exc
    except (ValueError, OSError) as exc:
        raise _load_error(facts, exc) from exc
    return llm, plan


def _load_error(facts: ModelFacts, exc: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"llama.cpp could not load {facts.path} ({facts.architecture}, {facts.file_type}): "
        f"{exc}. The file may use an architecture or quantization this llama.cpp build does "
        "not support, or the settings may not fit; run with --verbose to see llama.cpp's log."
    )
