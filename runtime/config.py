"""Settings for loading a model and for one generation; defaults that work on a laptop CPU."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from llamacode.runtime.fim import FimMode

# KV-cache value types llama.cpp accepts, by the names users type.
KV_CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")
# The context we allocate when the user does not ask: enough for completion with
# cross-file context, small enough for the KV cache of a 7B model on a laptop.
DEFAULT_CTX_CAP = 8192
# Past this context a GPU load quantizes its KV cache to q8_0 (half the memory of f16).
LONG_CONTEXT = 16384


def default_threads() -> int:
    """Leave a core to the editor and the server's event loop; skip hyperthreads.

    llama.cpp's threads spin at each barrier: on a small machine, one that competes with
    another busy process stalls every token (seen: 10-40x slower with 2 threads than 1 on
    a loaded 2-core machine).
    """
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return max(1, n - 1 if n <= 4 else n // 2)


@dataclass
class EngineConfig:
    """How a model is loaded. Zero / None mean "choose from the model and the machine"."""

    n_ctx: int = 0
    n_threads: int = field(default_factory=default_threads)
    n_batch: int = 512
    # None: chosen by runtime.loader.plan_load from the model and the llama.cpp build
    # (all layers on a GPU build, flash attention there, a q8_0 KV cache past 16k tokens).
    n_gpu_layers: int | None = None
    flash_attn: bool | None = None
    type_k: str | None = None
    type_v: str | None = None
    kv_overrides: dict[str, bool | int | float | str] = field(default_factory=dict)
    seed: int = 0
    # Reuse runs of at least this many cached tokens found past the first difference from the
    # previous prompt, moved into place by a KV position shift (llama-server's --cache-reuse);
    # 0 keeps only the common prefix. Off by default: the moved keys were computed after the
    # old text, and in PSM typing most suggestions change (bench/cache_reuse_quality.py).
    cache_reuse_min_chunk: int = 0
    check_memory: bool = True
    # A LoRA adapter GGUF applied on top of the weights (checked against the model first by
    # runtime.adapter), and how strongly: 1.0 as trained, 0.0 not at all.
    adapter_path: str | None = None
    adapter_scale: float = 1.0
    # Try the file in a child process first, so a crash inside llama.cpp cannot take a
    # long-lived process (the language server) down.
    isolate_load: bool = False
    verbose: bool = False


@dataclass
class GenerationConfig:
    """Limits and sampling for one request."""

    max_tokens: int = 128
    time_budget_s: float | None = None
    temperature: float = 0.0
    top_k: int = 40
    top_p: float = 0.95
    seed: int = 0
    stop: tuple[str, ...] = ()
    fim_mode: FimMode | None = None
