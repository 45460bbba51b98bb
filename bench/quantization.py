"""Size, speed and perplexity of f16, q8_0, q4_0 and Q4_K_M versions of one model.

The variants are written by ``convert.quantize`` (the code behind ``llamacode quantize``):
f16/q8_0/q4_0 in numpy, Q4_K_M through llama.cpp's quantizer. The default model ships only
as Q4_1, so its f16 version is that file dequantized, and every row re-quantizes the same
f16 weights. Speed is the engine's prompt processing and generation; perplexity is
llama.cpp's, on held-out standard-library files (PSF license).

    .venv/bin/python bench/quantization.py [--model M.gguf]
"""

from __future__ import annotations

import argparse
import math
import sys
import sysconfig
from pathlib import Path

from common import BENCH, default_model, finish, median

from llamacode.convert.quantize import quantize_gguf
from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine
from llamacode.training.evaluation.perplexity import (
    LogitScorer,
    PerplexityConfig,
    evaluate_perplexity,
)

STDLIB = Path(sysconfig.get_paths()["stdlib"])
HELD_OUT = [STDLIB / n for n in ("textwrap.py", "heapq.py", "shlex.py", "colorsys.py", "bisect.py")]
TYPES = ("f16", "q8_0", "q4_0", "Q4_K_M")


def variants(model: Path, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {t: out / f"{model.stem}.{t}.gguf" for t in TYPES}
    if not paths["f16"].is_file():
        quantize_gguf(model, paths["f16"], "f16", progress=False)
    for t in TYPES[1:]:
        if not paths[t].is_file():
            quantize_gguf(paths["f16"], paths[t], t, progress=False)
    return paths


def speed(path: Path, threads: int, rounds: int) -> tuple[float, float]:
    engine = Engine.load(path, EngineConfig(n_ctx=1024, n_threads=threads))
    try:
        text = HELD_OUT[0].read_text()
        engine.complete("warm up", GenerationConfig(max_tokens=4))
        pp, tg = [], []
        for r in range(rounds):
            ids = engine.tokenize(f"v{r} = {r}\n" + text)[:256]
            g = engine.complete(engine.detokenize(ids), GenerationConfig(max_tokens=1))
            pp.append(g.evaluated_tokens / g.ttft_s)
            g = engine.complete(text[:1500], GenerationConfig(max_tokens=32))
            if g.generated_tokens > 4:
                tg.append((g.generated_tokens - 1) / (g.elapsed_s - g.ttft_s))
        return median(pp), median(tg)
    finally:
        engine.close()


def perplexity(path: Path, threads: int, length: int) -> float:
    scorer = LogitScorer(path, n_ctx=length, n_batch=256, n_threads=threads)
    try:
        config = PerplexityConfig(max_length=length, min_tokens=64)
        summary, _ = evaluate_perplexity(scorer, HELD_OUT, config, progress=False)
    finally:
        scorer.close()
    nll = sum(math.log(b["perplexity"]) * b["tokens"] for b in summary["buckets"] if b["tokens"])
    return math.exp(nll / sum(b["tokens"] for b in summary["buckets"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ppl-length", type=int, default=512)
    args = parser.parse_args()
    model = args.model or default_model()
    paths = variants(model, BENCH / "build" / "quant")
    rows, results = [], {}
    for t, path in paths.items():
        pp, tg = speed(path, args.threads, args.rounds)
        ppl = perplexity(path, args.threads, args.ppl_length)
        size = path.stat().st_size / 2**20
        results[t] = {"path": str(path), "mib": size, "pp_tps": pp, "tg_tps": tg, "perplexity": ppl}
        print(f"{t}: {results[t]}", file=sys.stderr)
    base = results["f16"]["perplexity"]
    for t, r in results.items():
        rows.append(
            [t, r["mib"], r["pp_tps"], r["tg_tps"], r["perplexity"], r["perplexity"] / base]
        )
    payload = {"source": str(model), "threads": args.threads, "variants": results,
               "held_out": [str(p) for p in HELD_OUT], "ppl_length": args.ppl_length}  # fmt: skip
    headers = ["type", "size MiB", "pp256 t/s", "tg32 t/s", "perplexity", "ppl / f16"]
    finish("quantization", payload, headers, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
