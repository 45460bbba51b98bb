"""Conversion throughput and peak memory on a generated model of at least 100M parameters.

Generates a random Llama checkpoint (numpy, no torch), then runs each conversion in a
fresh process and reports MB/s and that process's peak RSS above an import-only baseline,
as a multiple of the largest tensor (streaming should keep it a small constant, not the
model size).

    .venv/bin/python bench/convert_speed.py [--dim 768 --layers 12 --vocab 32000]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from llamacode.convert.checkpoint_format import (
    MODEL_FILE,
    CheckpointConfig,
    ModelConfig,
    TokenizerRef,
    write_config,
)
from llamacode.convert.llama_layout import meta_shapes
from llamacode.convert.safetensors_io import write_safetensors

CHILD = """
import json, resource, sys, time
from llamacode.convert.export_gguf import export_gguf
from llamacode.convert.import_gguf import import_gguf
from llamacode.convert.quantize import quantize_gguf
verb, src, dst, kind = sys.argv[1:5]
start = time.perf_counter()
if verb == "export":
    export_gguf(src, dst, kind, progress=False)
elif verb == "import":
    import_gguf(src, dst, progress=False)
elif verb == "quantize":
    quantize_gguf(src, dst, kind, progress=False)
seconds = time.perf_counter() - start
# VmHWM is this process's own peak; ru_maxrss would include the parent's peak before exec.
try:
    status = open("/proc/self/status").read().split("VmHWM:")[1]
    peak_kb = int(status.split()[0])
except (OSError, IndexError):
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "maxrss_kb": peak_kb}))
"""


def make_checkpoint(path: Path, hp: ModelConfig) -> int:
    """Random weights in the checkpoint format; returns the parameter count."""
    import sentencepiece as spm

    path.mkdir(parents=True)
    rng = np.random.default_rng(0)
    shapes = meta_shapes(hp)
    write_safetensors(
        path / MODEL_FILE,
        list(shapes.items()),
        lambda name: rng.standard_normal(shapes[name], dtype=np.float32) * 0.02,
    )
    buf = io.BytesIO()
    words = ["def", "return", "self", "value", "items", "(", ")", ":", "=", "\n"]
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(9)) for i in range(500)]
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=buf, vocab_size=300, model_type="bpe",
        byte_fallback=True, control_symbols=["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"],
        minloglevel=2,
    )  # fmt: skip
    tokenizer = TokenizerRef("sentencepiece", {"pre": 3, "suf": 4, "mid": 5, "eot": 6})
    (path / tokenizer.file).write_bytes(buf.getvalue())
    write_config(path, CheckpointConfig(hp, tokenizer, None, {"stage": "benchmark"}))
    return sum(int(np.prod(s)) for s in shapes.values())


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *args], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    hp = ModelConfig(
        dim=args.dim, n_layers=args.layers, n_heads=args.heads, n_kv_heads=args.heads,
        vocab_size=args.vocab, hidden_dim=args.hidden, max_seq_len=4096,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        n_params = make_checkpoint(work / "ckpt", hp)
        print(f"generated {n_params / 1e6:.1f}M parameters in {time.perf_counter() - t0:.1f} s")
        largest = max(int(np.prod(s)) * 4 for s in meta_shapes(hp).values())
        source_mb = (work / "ckpt" / "model.safetensors").stat().st_size / 1e6
        baseline = run_child("none", "", "", "")["maxrss_kb"] / 1024
        jobs = [
            ("export f32", ("export", str(work / "ckpt"), str(work / "m.f32.gguf"), "f32")),
            ("export f16", ("export", str(work / "ckpt"), str(work / "m.f16.gguf"), "f16")),
            ("export q8_0", ("export", str(work / "ckpt"), str(work / "m.q8.gguf"), "q8_0")),
            ("import f16 gguf", ("import", str(work / "m.f16.gguf"), str(work / "back"), "")),
            ("quantize f16->Q4_K_M", ("quantize", str(work / "m.f16.gguf"), str(work / "m.q4km.gguf"), "Q4_K_M")),
        ]  # fmt: skip
        rows = []
        for label, job in jobs:
            result = run_child(*job)
            src = Path(job[1])
            in_mb = source_mb if src.is_dir() else src.stat().st_size / 1e6
            peak = result["maxrss_kb"] / 1024
            rows.append((label, in_mb, result["seconds"], peak, peak - baseline))
            print(f"{label}: {result['seconds']:.1f} s", flush=True)
    print()
    print(f"machine: {machine()}")
    print(
        f"model: {n_params / 1e6:.1f}M params, dim {hp.dim}, {hp.n_layers} layers, vocab "
        f"{hp.vocab_size}; source {source_mb:.0f} MB f32; largest tensor {largest / 2**20:.0f} MiB "
        f"(f32); import-only process baseline RSS {baseline:.0f} MiB"
    )
    print(f"{'job':<22}{'input MB':>10}{'seconds':>9}{'MB/s':>8}{'peak RSS MiB':>14}"
          f"{'above base':>12}{'x largest':>11}")  # fmt: skip
    for label, in_mb, seconds, peak, above in rows:
        print(
            f"{label:<22}{in_mb:>10.0f}{seconds:>9.2f}{in_mb / seconds:>8.0f}{peak:>14.0f}"
            f"{above:>12.0f}{above * 2**20 / largest:>11.2f}"
        )


if __name__ == "__main__":
    main()
