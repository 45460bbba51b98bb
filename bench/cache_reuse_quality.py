"""What reusing shifted KV chunks costs in suggestion quality while typing, and what it saves.

At each infill task's cursor (evals/fim_stdlib_python.jsonl.gz: real standard-library
code on both sides), the first line of the missing middle is typed one character at a
time, and every keystroke asks for a suggestion through runtime.suggest (greedy, PSM,
no time budget). The same keystrokes go to one engine per --min-chunk setting, which
reuses cached chunks past the first difference (runtime/kv_reuse.py), and to a reference
engine whose cache is cleared before every request, so each prompt is evaluated fresh.
Requests alternate engine by engine, so load from other processes hits all alike.

A shifted chunk keeps keys and values computed after the old text before it, so its
suggestions can differ from the fresh ones. Columns: how often the first line of the
suggestion equals the fresh one; how often it completes the typed line exactly (typed
text + suggestion = the task's line); prompt tokens evaluated per request; latency.

    .venv/bin/python bench/cache_reuse_quality.py --model qwen2.5-coder-0.5b.gguf --threads 1
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

from common import ROOT, finish, median, percentile

from llamacode.runtime.config import EngineConfig
from llamacode.runtime.engine import Engine
from llamacode.runtime.fim import FimMode
from llamacode.runtime.suggest import suggest
from llamacode.runtime.types import SuggestRequest, SuggestSettings

TASKS = ROOT / "evals" / "fim_stdlib_python.jsonl.gz"
FRESH = "fresh"


def keystrokes(task: dict, limit: int) -> list[tuple[str, str, str]]:
    """(prefix, suffix, expected rest of the line) while the middle's first line is typed
    into the file without it: the code after the cursor stays the same."""
    line = task["middle"].split("\n", 1)[0]
    suffix = task["middle"][len(line) :] + task["suffix"]
    return [(task["prefix"] + line[:k], suffix, line[k:]) for k in range(min(limit, len(line)) + 1)]


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].rstrip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--ctx", type=int, default=2048)
    parser.add_argument("--tasks", type=int, default=16, help="the first N tasks of the set")
    parser.add_argument("--kind", choices=["single-line", "span", "all"], default="all")
    parser.add_argument("--keystrokes", type=int, default=5, help="characters typed per task")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument(
        "--min-chunk", type=int, nargs="+", default=[16, 64], help="settings to compare"
    )
    parser.add_argument("--fim-mode", choices=[m.value for m in FimMode], default="psm")
    args = parser.parse_args()

    with gzip.open(TASKS, "rt", encoding="utf-8") as f:
        tasks = [json.loads(line) for line in f]
    tasks = [t for t in tasks if args.kind in ("all", t["kind"])][: args.tasks]
    requests = [(t, *k) for t in tasks for k in keystrokes(t, args.keystrokes)]
    settings = SuggestSettings(
        time_budget_s=None, max_tokens=args.max_tokens, fim_mode=FimMode(args.fim_mode)
    )
    names = [FRESH] + [f"min chunk {n}" for n in args.min_chunk]
    engines = {
        name: Engine.load(
            args.model,
            EngineConfig(n_ctx=args.ctx, n_threads=args.threads, cache_reuse_min_chunk=chunk),
        )
        for name, chunk in zip(names, [0, *args.min_chunk], strict=True)
    }
    lines: dict[str, list[str]] = {n: [] for n in names}
    exact: dict[str, list[bool]] = {n: [] for n in names}
    evaluated: dict[str, list[int]] = {n: [] for n in names}
    latency: dict[str, list[float]] = {n: [] for n in names}
    try:
        for i, (task, prefix, suffix, rest) in enumerate(requests):
            request = SuggestRequest(prefix + suffix, len(prefix), path=task["path"])
            for name, engine in engines.items():
                if name == FRESH:
                    engine._llm.n_tokens = 0  # forget the cache: every prompt evaluated whole
                start = time.perf_counter()
                result = suggest(engine, request, settings)
                latency[name].append(time.perf_counter() - start)
                shown = first_line(result.texts[0]) if result.texts else ""
                lines[name].append(shown)
                exact[name].append(shown == rest.rstrip())
                evaluated[name].append(sum(g.evaluated_tokens for g in result.generations))
            if i % 10 == 0:
                print(f"{i + 1}/{len(requests)} keystrokes", file=sys.stderr)
    finally:
        for engine in engines.values():
            engine.close()

    n = len(requests)
    rows = []
    for name in names:
        agree = sum(a == b for a, b in zip(lines[name], lines[FRESH], strict=True))
        rows.append(
            [
                name,
                f"{100 * agree / n:.1f} %",
                f"{100 * sum(exact[name]) / n:.1f} %",
                sum(evaluated[name]) / n,
                median(evaluated[name]),
                median(latency[name]) * 1000,
                percentile(latency[name], 95) * 1000,
            ]
        )
    payload = {
        "model": str(args.model),
        "fim_mode": args.fim_mode,
        "threads": args.threads,
        "ctx": args.ctx,
        "tasks": len(tasks),
        "kind": args.kind,
        "keystrokes": n,
        "suggestions": lines,
        "exact": exact,
        "evaluated_tokens": evaluated,
        "latency_s": latency,
    }
    headers = ["engine", "first line = fresh", "completes the line", "tokens evaluated (mean)",
               "tokens evaluated (p50)", "p50 ms", "p95 ms"]  # fmt: skip
    finish(f"cache_reuse_quality_{args.model.stem}", payload, headers, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
