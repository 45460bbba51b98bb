"""Long-context serving speed: fill the context to each length, then generate.

For each length it reports prompt-processing and generation tokens/s, time to first token,
and (on CUDA) the GPU memory in use against the KV-cache size computed from the model's
shape. Run on a GPU build with full offload, flash attention and a q8_0 KV cache:

    python bench/long_context.py --lengths 16384 32768 65536 --gpu-layers -1 \
        --flash-attn --cache-type q8_0

On a CPU build, small lengths show the same curve at laptop scale:

    python bench/long_context.py --lengths 1024 2048 4096
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine
from llamacode.runtime.loader import KV_BYTES_PER_VALUE
from llamacode.runtime.models import resolve_model


def gpu_memory_mib() -> float | None:
    """GPU memory in use according to nvidia-smi, or None without one."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return float(out.stdout.split()[0]) if out.returncode == 0 and out.stdout.strip() else None


def filler_text() -> str:
    """Real code to fill the context with: the standard library's own sources."""
    import asyncio
    import inspect
    import json as json_module
    import typing

    return "\n\n".join(
        inspect.getsource(m) for m in (typing, asyncio.base_events, json_module.decoder)
    )


def measure(args: argparse.Namespace, length: int, model: Path, text: str) -> dict[str, float]:
    before = gpu_memory_mib()
    engine = Engine.load(
        model,
        EngineConfig(
            n_ctx=length + args.generate + 8,
            n_gpu_layers=args.gpu_layers,
            flash_attn=args.flash_attn,
            type_k=args.cache_type,
            type_v=args.cache_type,
            n_batch=args.batch,
            check_memory=args.gpu_layers == 0,
        ),
    )
    ids = engine.tokenize(text)
    while len(ids) < length:
        ids = ids + ids
    prompt = engine.detokenize(ids[: length - 1])
    start = time.perf_counter()
    result = engine.complete(prompt, GenerationConfig(max_tokens=args.generate))
    total = time.perf_counter() - start
    pp_s = result.ttft_s
    tg_s = max(total - pp_s, 1e-9)
    after = gpu_memory_mib()
    kv_bytes = engine.facts.kv_cache_bytes(engine.n_ctx, KV_BYTES_PER_VALUE[engine.plan.type_k])
    row = {
        "length": result.prompt_tokens,
        "pp_tokens_per_s": result.evaluated_tokens / pp_s,
        "tg_tokens_per_s": max(result.generated_tokens - 1, 1) / tg_s,
        "ttft_s": result.ttft_s,
        "kv_cache_mib": kv_bytes / 2**20,
        "gpu_mib": None if before is None or after is None else after - before,
    }
    engine.close()
    return row


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="GGUF (default: the resolved model)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--generate", type=int, default=64)
    parser.add_argument("--gpu-layers", type=int, default=0)
    parser.add_argument("--flash-attn", action="store_true")
    parser.add_argument("--cache-type", default="f16")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    model = resolve_model(args.model).path
    text = filler_text()
    rows = []
    for length in args.lengths:
        rows.append(measure(args, length, model, text))
        print(json.dumps(rows[-1]), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"model": str(model), "rows": rows}, indent=2))
    print(
        f"\nmodel {model.name}; machine {platform.node()} ({platform.machine()}), "
        f"GPU layers {args.gpu_layers}, flash attention {args.flash_attn}, KV {args.cache_type}"
    )
    print("| context | prompt tok/s | gen tok/s | TTFT s | KV cache MiB | GPU MiB used |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        gpu = "n/a" if r["gpu_mib"] is None else f"{r['gpu_mib']:.0f}"
        print(
            f"| {r['length']} | {r['pp_tokens_per_s']:.0f} | {r['tg_tokens_per_s']:.1f} | "
            f"{r['ttft_s']:.2f} | {r['kv_cache_mib']:.0f} | {gpu} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
