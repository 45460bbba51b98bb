"""Engine throughput against llama.cpp's own llama-bench, same GGUF, same threads.

Prompt processing (tokens/s over a cold prompt of --pp tokens) and generation (tokens/s
over --tg greedy tokens, sampling included) are measured in rounds; each round runs
llama-bench once and the engine once, so load from other processes hits both alike.
Reports the ratio engine / llama-bench (target: at least 0.95).

    bench/build_peer.sh && .venv/bin/python bench/throughput.py [--model M.gguf]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import sysconfig
from pathlib import Path

from common import default_model, finish, median, peer_binary

from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine

SOURCE = Path(sysconfig.get_paths()["stdlib"]) / "textwrap.py"


def llama_bench(model: Path, threads: int, pp: int, tg: int, batch: int) -> dict[str, float]:
    cmd = [
        str(peer_binary("llama-bench")), "-m", str(model), "-t", str(threads), "-p", str(pp),
        "-n", str(tg), "-r", "1", "-b", str(batch), "-ub", str(batch), "-fa", "0", "-o", "json",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=900).stdout
    rows = json.loads(out)
    return {
        "pp": next(r["avg_ts"] for r in rows if r["n_prompt"] and not r["n_gen"]),
        "tg": next(r["avg_ts"] for r in rows if r["n_gen"] and not r["n_prompt"]),
    }


def prompt_of(engine: Engine, first_word: str, n_tokens: int) -> str:
    """Code of about ``n_tokens`` tokens starting with ``first_word`` (so no cache reuse)."""
    ids = engine.tokenize(first_word + " = 1\n" + SOURCE.read_text())[:n_tokens]
    return engine.detokenize(ids)


def ours(engine: Engine, pp_prompt: str, tg_prompt: str, tg: int) -> dict[str, float]:
    g = engine.complete(pp_prompt, GenerationConfig(max_tokens=1))
    if g.reused_tokens:
        raise RuntimeError("the prompt-processing run reused the KV cache; use distinct prompts")
    pp_rate = g.evaluated_tokens / g.ttft_s
    g = engine.complete(tg_prompt, GenerationConfig(max_tokens=tg, temperature=0.0))
    if g.generated_tokens < 16:
        raise RuntimeError(f"only {g.generated_tokens} tokens generated; use another prompt")
    return {
        "pp": pp_rate,
        "tg": (g.generated_tokens - 1) / (g.elapsed_s - g.ttft_s),
        "tg_n": g.generated_tokens,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument(
        "--threads", type=int, default=1, help="same for both (1: robust on a shared machine)"
    )
    parser.add_argument("--pp", type=int, default=256)
    parser.add_argument("--tg", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=512)
    args = parser.parse_args()
    model = args.model or default_model()
    engine = Engine.load(
        model,
        EngineConfig(
            n_ctx=max(1024, 2 * (args.pp + args.tg)), n_threads=args.threads, n_batch=args.batch
        ),
    )
    tg_prompt = "\n".join(SOURCE.read_text().splitlines()[:40]) + "\n"
    engine.complete("warm up", GenerationConfig(max_tokens=8))
    peer: dict[str, list[float]] = {"pp": [], "tg": []}
    mine: dict[str, list[float]] = {"pp": [], "tg": []}
    words = ["alpha", "beta", "gamma", "delta", "omega", "theta", "kappa", "sigma"]
    for r in range(args.rounds):
        theirs = llama_bench(model, args.threads, args.pp, args.tg, args.batch)
        us = ours(engine, prompt_of(engine, words[r % len(words)], args.pp), tg_prompt, args.tg)
        for key in ("pp", "tg"):
            peer[key].append(theirs[key])
            mine[key].append(us[key])
        print(f"round {r + 1}: llama-bench {theirs}, llamacode {us}", file=sys.stderr)
    engine.close()
    rows = []
    for key, label in (("pp", f"pp{args.pp}"), ("tg", f"tg{args.tg}")):
        p, m = median(peer[key]), median(mine[key])
        rows.append([label, p, m, m / p])
    payload = {
        "model": str(model),
        "threads": args.threads,
        "rounds": args.rounds,
        "llama_bench": peer,
        "llamacode": mine,
        "ratios": {r[0]: r[3] for r in rows},
    }
    finish("throughput", payload, ["test", "llama-bench t/s", "llamacode t/s", "ratio"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
