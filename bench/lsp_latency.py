"""Keystroke-to-suggestion latency through the language server (a benchmark, not a test).

Types part of a real source file again, character by character, in the middle of the
file (the code after it stays in place), into `llamacode serve` (the default typing model
unless --model): each keystroke is an incremental didChange followed by an automatic
inlineCompletion request, answered before the next key. Reports p50/p95 latency, the
typed-through cache hit rate, prompt tokens evaluated per model call, the server's
overhead (latency against the engine's own generation time for the same suggestions), and
the server's memory when ready and after typing (--minutes keeps typing that long).

    .venv/bin/python bench/lsp_latency.py [--file runtime/trim.py] [--chars 400] [--minutes 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import ROOT, finish, median, percentile
from tqdm import tqdm

from llamacode.lsp.client import LspClient, file_uri, serve_argv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", default=str(ROOT / "runtime" / "trim.py"))
    parser.add_argument("--chars", type=int, default=400, help="characters to type")
    parser.add_argument(
        "--at", type=float, default=0.5, help="where typing starts, as a fraction of the file"
    )
    parser.add_argument("--minutes", type=float, default=0.0, help="keep typing this long")
    parser.add_argument("--model", help="GGUF file (default: the embedded default model)")
    parser.add_argument("--threads", type=int, help="llama.cpp threads (default: the engine's)")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()

    source = Path(args.file).read_text(encoding="utf-8")
    start = source.rfind("\n", 0, int(len(source) * args.at)) + 1  # a line start
    typed = source[start : start + args.chars]
    after = source[start + len(typed) :]
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
        state = client.wait_for_model(until_all=True)  # nothing loading beside the typing
        if state["model"]["state"] != "ready":
            sys.exit(f"error: model did not load: {state['model']['error']}")
        rss_ready = state["process"]["rss_bytes"]
        version = 0
        rows = []
        previous = client.request("llamacode/stats")
        deadline = time.monotonic() + args.minutes * 60
        bar = tqdm(desc="typing", unit="key", file=sys.stderr)
        while True:
            version += 1
            head = source[:start]
            if version == 1:
                item = {"uri": uri, "languageId": "python", "version": 1, "text": head + after}
                client.notify("textDocument/didOpen", {"textDocument": item})
            else:  # back to the start: the typed part is gone again
                change = {"textDocument": {"uri": uri, "version": version}}
                change["contentChanges"] = [{"text": head + after}]
                client.notify("textDocument/didChange", change)
            line = head.count("\n")
            col = len(head.rsplit("\n", 1)[-1].encode("utf-16-le")) // 2
            rows += _type(client, uri, typed, line, col, version, previous, bar)
            version += len(typed)
            previous = client.request("llamacode/stats")
            if time.monotonic() >= deadline:
                break
        bar.close()
        final = previous
    finally:
        client.close()
    return _report(args, rows, final, rss_ready)


def _type(client, uri, typed, line, col, version, previous, bar) -> list[dict]:
    """Type ``typed`` at (line, col), one request per key; one row per keystroke."""
    rows = []
    for ch in typed:
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
        bar.update(1)
    return rows


def _report(args, rows: list[dict], final: dict, rss_ready: int) -> int:
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
        "model": final["model"]["path"],
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
        ["server RSS when ready (MiB)", rss_ready / 2**20],
        ["server RSS after typing (MiB)", final["process"]["rss_bytes"] / 2**20],
    ]
    finish("lsp_latency", payload, headers, table)
    return 0


def _ratio(stats: dict) -> float:
    model = stats["model"]
    return model["reused_tokens"] / model["prompt_tokens"] if model["prompt_tokens"] else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
