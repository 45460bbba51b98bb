"""Keystroke-to-suggestion latency through the language server (a benchmark, not a test).

Replays typing a real source file character by character into `llamacode serve` (the
default model unless --model): each keystroke is an incremental didChange followed by an
automatic inlineCompletion request, answered before the next key. Reports p50/p95
latency, the typed-through cache hit rate, prompt tokens evaluated per model call, and
the server's overhead: latency against the engine's own generation time for the same
suggestions (from the engine's counters, read through llamacode/stats).

    .venv/bin/python bench/lsp_latency.py [--file runtime/trim.py] [--chars 400]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import ROOT, finish, median, percentile
from tqdm import tqdm

from lsp.client import LspClient, file_uri, serve_argv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", default=str(ROOT / "runtime" / "trim.py"))
    parser.add_argument("--chars", type=int, default=400, help="characters to type")
    parser.add_argument("--skip", type=int, default=0, help="start typing at this character")
    parser.add_argument("--model", help="GGUF file (default: the embedded default model)")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: the engine's)")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    source = Path(args.file).read_text(encoding="utf-8")
    typed = source[args.skip : args.skip + args.chars]
    flags = ["--max-tokens", str(args.max_tokens), "--temperature", "0"]
    if args.model:
        flags += ["--model", args.model]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    client = LspClient(serve_argv(*flags))
    workdir = Path(args.file).resolve().parent
    uri = file_uri(workdir / "typing_replay.py")
    try:
        client.initialize(workdir)
        state = client.wait_for_model()
        if state["model"]["state"] != "ready":
            sys.exit(f"error: model did not load: {state['model']['error']}")
        text = source[: args.skip]
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
        )
        line = text.count("\n")
        col = len(text.rsplit("\n", 1)[-1].encode("utf-16-le")) // 2
        version = 1
        rows = []
        previous = client.request("llamacode/stats")
        for ch in tqdm(typed, desc="typing", unit="key", file=sys.stderr):
            version += 1
            at = {"line": line, "character": col}
            started = time.perf_counter()
            client.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": version},
                    "contentChanges": [{"range": {"start": at, "end": at}, "text": ch}],
                },
            )
            if ch == "\n":
                line, col = line + 1, 0
            else:
                col += len(ch.encode("utf-16-le")) // 2
            client.request(
                "textDocument/inlineCompletion",
                {
                    "textDocument": {"uri": uri},
                    "position": {"line": line, "character": col},
                    "context": {"triggerKind": 2},
                },
            )
            latency_ms = (time.perf_counter() - started) * 1000.0
            now = client.request("llamacode/stats")
            engine_ms = (now["engine"]["generation_s"] - previous["engine"]["generation_s"]) * 1000
            rows.append(
                {
                    "latency_ms": latency_ms,
                    "cache_hit": now["cache"]["hits"] > previous["cache"]["hits"],
                    "model_runs": now["model"]["runs"] - previous["model"]["runs"],
                    "evaluated": now["model"]["evaluated_tokens"]
                    - previous["model"]["evaluated_tokens"],
                    "reused": now["model"]["reused_tokens"] - previous["model"]["reused_tokens"],
                    "engine_ms": engine_ms,
                }
            )
            previous = now
        final = previous
    finally:
        client.close()

    latencies = [r["latency_ms"] for r in rows]
    model_rows = [r for r in rows if r["model_runs"]]
    evaluated = [float(r["evaluated"]) for r in model_rows]
    per_key_evaluated = [float(r["evaluated"]) for r in rows]
    model_latency = [r["latency_ms"] for r in model_rows]
    engine_time = [r["engine_ms"] for r in model_rows]
    overhead = [r["latency_ms"] - r["engine_ms"] for r in model_rows]
    hits = sum(r["cache_hit"] for r in rows)
    p50_model, p50_engine = median(model_latency), median(engine_time)
    payload = {
        "file": str(args.file),
        "keystrokes": len(rows),
        "rows": rows,
        "server_stats": final,
    }
    headers = ["metric", "value"]
    table = [
        ["keystrokes", len(rows)],
        ["latency p50 (ms)", percentile(latencies, 50)],
        ["latency p95 (ms)", percentile(latencies, 95)],
        ["cache hit rate", hits / len(rows) if rows else float("nan")],
        ["model calls", len(model_rows)],
        ["latency p50, model calls (ms)", p50_model],
        ["engine generation p50, same calls (ms)", p50_engine],
        ["p50 latency / engine time", p50_model / p50_engine if p50_engine else float("nan")],
        ["server overhead p50 (ms)", median(overhead)],
        ["prompt tokens evaluated per model call (median)", median(evaluated)],
        ["prompt tokens evaluated per keystroke (median)", median(per_key_evaluated)],
        ["prompt tokens reused / prompt tokens", _ratio(final)],
    ]
    finish("lsp_latency", payload, headers, table)
    return 0


def _ratio(stats: dict) -> float:
    model = stats["model"]
    return model["reused_tokens"] / model["prompt_tokens"] if model["prompt_tokens"] else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
