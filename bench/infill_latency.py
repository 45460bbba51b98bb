"""Infill latency while typing in the middle of a file: llamacode against llama-server.

Both run the same GGUF with the same threads and context, on the same file and the same
cursor positions: at each position a real line is typed again one character at a time,
with the rest of the file after the cursor, and every keystroke asks for an infill.
llama-server (built by bench/build_peer.sh from the same llama.cpp) runs as llama.vim
recommends: prompt cache on, ``--cache-reuse 256``, one slot, on 127.0.0.1 only. Requests
alternate keystroke by keystroke, so load from other processes hits every system alike.

Rows:
- llama-server /infill in its default PSM layout and with --spm-infill;
- the llamacode engine in both layouts with the same prompt and --n-predict greedy tokens
  (one engine each, so neither thrashes the other's KV cache): like for like;
- the llamacode suggestion path (runtime.suggest, the editor's settings and the model's
  shipped layout): what a user gets, with its own windows and stop rules.

Targets: llamacode p50 and p95 at most 0.7 of llama-server's; median prompt tokens
evaluated per model call at most 16 in the layout that ships. Without --model the default
typing model is used (`llamacode models install`).

    bench/build_peer.sh && .venv/bin/python bench/infill_latency.py [--model M.gguf]
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import sysconfig
import time
from contextlib import closing
from pathlib import Path

from common import OUT, finish, median, peer_binary, percentile

from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.engine import Engine
from llamacode.runtime.fim import FimMode
from llamacode.runtime.models import Role, resolve_model
from llamacode.runtime.suggest import suggest
from llamacode.runtime.types import SuggestRequest, SuggestSettings

SOURCE = Path(sysconfig.get_paths()["stdlib"]) / "bisect.py"
SUGGESTION_PATH = "llamacode suggestion path (shipped)"


def typing_requests(text: str, positions: int, keystrokes: int) -> list[tuple[str, str]]:
    """(prefix, suffix) for each keystroke while retyping lines spread over the file."""
    lines = text.splitlines(keepends=True)
    candidates = [i for i, line in enumerate(lines) if len(line.strip()) >= keystrokes]
    step = max(1, len(candidates) // positions)
    chosen = candidates[step // 2 :: step][:positions]
    requests = []
    for i in chosen:
        before = "".join(lines[:i])
        line = lines[i].rstrip("\n")
        indent = len(line) - len(line.lstrip())
        after = "\n" + "".join(lines[i + 1 :])
        for k in range(keystrokes + 1):
            requests.append((before + line[: indent + k], after))
    return requests


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """llama-server on 127.0.0.1 with one slot; stopped on exit."""

    def __init__(
        self, model: Path, threads: int, n_ctx: int, spm: bool, log: Path, cache_reuse: int
    ):
        self.port = free_port()
        cmd = [
            str(peer_binary("llama-server")), "-m", str(model), "--host", "127.0.0.1",
            "--port", str(self.port), "-c", str(n_ctx), "-t", str(threads), "-tb", str(threads),
            "-np", "1", "-fa", "off", "-b", "2048", "-ub", "512",
            "--cache-reuse", str(cache_reuse),
        ] + (["--spm-infill"] if spm else [])  # fmt: skip
        self.log = log.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"error: llama-server exited ({self.proc.returncode}); see {log}")
            try:
                self.conn.request("GET", "/health")
                resp = self.conn.getresponse()
                resp.read()
                if resp.status == 200:
                    return
            except OSError:
                self.conn.close()
            time.sleep(0.5)
        self.close()
        sys.exit(f"error: llama-server did not become ready in 180 s; see {log}")

    def infill(self, prefix: str, suffix: str, n_predict: int) -> tuple[float, dict]:
        body = json.dumps(
            {
                "input_prefix": prefix,
                "input_suffix": suffix,
                "input_extra": [],
                "n_predict": n_predict,
                "temperature": 0.0,
                "top_k": 1,
                "cache_prompt": True,
                "stream": False,
            }
        )
        for attempt in (1, 2):
            start = time.perf_counter()
            try:
                self.conn.request("POST", "/infill", body, {"Content-Type": "application/json"})
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # The server closes idle keep-alive connections; reconnect once, untimed.
                self.conn.close()
                if attempt == 2:
                    raise
        elapsed = time.perf_counter() - start
        if resp.status != 200:
            raise RuntimeError(f"llama-server /infill answered {resp.status}: {data[:300]!r}")
        return elapsed, json.loads(data)

    def close(self) -> None:
        self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--file", type=Path, default=SOURCE, help="the file being edited")
    parser.add_argument(
        "--threads", type=int, default=1, help="same for both (1: robust on a shared machine)"
    )
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--positions", type=int, default=5)
    parser.add_argument("--keystrokes", type=int, default=10)
    parser.add_argument("--n-predict", type=int, default=16)
    parser.add_argument("--cache-reuse", type=int, default=256, help="llama-server's")
    args = parser.parse_args()
    model = args.model or resolve_model(role=Role.TYPING).path
    requests = typing_requests(args.file.read_text(), args.positions, args.keystrokes)
    # One engine per layout: a single engine alternating layouts would thrash its KV cache.
    engines = {
        mode: Engine.load(model, EngineConfig(n_ctx=args.ctx, n_threads=args.threads))
        for mode in (FimMode.PSM, FimMode.SPM)
    }
    OUT.mkdir(parents=True, exist_ok=True)
    servers = {
        mode: Server(
            model,
            args.threads,
            args.ctx,
            mode is FimMode.SPM,
            OUT / f"llama-server-{mode.value}.log",
            args.cache_reuse,
        )
        for mode in (FimMode.PSM, FimMode.SPM)
    }
    systems = {
        "llama-server /infill PSM (default)": (servers[FimMode.PSM], None),
        "llama-server /infill --spm-infill": (servers[FimMode.SPM], None),
        "llamacode engine PSM": (None, FimMode.PSM),
        "llamacode engine SPM": (None, FimMode.SPM),
        SUGGESTION_PATH: (None, None),
    }
    shipped = Engine.load(model, EngineConfig(n_ctx=args.ctx, n_threads=args.threads))
    lat: dict[str, list[float]] = {s: [] for s in systems}
    evaluated: dict[str, list[int]] = {s: [] for s in systems}
    generated: dict[str, list[int]] = {s: [] for s in systems}
    try:
        for mode, engine in engines.items():  # warm-up: load pages, first full prompt
            engine.infill(*requests[0], config=GenerationConfig(max_tokens=2, fim_mode=mode))
            servers[mode].infill(*requests[0], n_predict=2)
        settings = SuggestSettings(time_budget_s=None)
        suggest(shipped, SuggestRequest("".join(requests[0]), len(requests[0][0])), settings)
        for n, (prefix, suffix) in enumerate(requests):
            for name, (server, mode) in systems.items():
                if server is not None:
                    seconds, reply = server.infill(prefix, suffix, args.n_predict)
                    lat[name].append(seconds)
                    evaluated[name].append(reply["timings"]["prompt_n"])
                    generated[name].append(reply["tokens_predicted"])
                    continue
                start = time.perf_counter()
                if mode is None:
                    request = SuggestRequest(prefix + suffix, len(prefix), path=args.file.name)
                    calls = suggest(shipped, request, settings).generations
                else:
                    config = GenerationConfig(
                        max_tokens=args.n_predict, temperature=0.0, fim_mode=mode
                    )
                    calls = [engines[mode].infill(prefix, suffix, config=config)]
                lat[name].append(time.perf_counter() - start)
                evaluated[name].append(sum(g.evaluated_tokens for g in calls))
                generated[name].append(sum(g.generated_tokens for g in calls))
            if n % 10 == 0:
                print(f"{n + 1}/{len(requests)} requests", file=sys.stderr)
    finally:
        for server in servers.values():
            server.close()
        for engine in [*engines.values(), shipped]:
            engine.close()
    peer = lat[next(iter(systems))]
    rows = []
    for name in systems:
        values = lat[name]
        rows.append(
            [
                name,
                median(values) * 1000,
                percentile(values, 95) * 1000,
                median([float(v) for v in evaluated[name]]),
                sum(generated[name]) / len(values),
                median(values) / median(peer),
                percentile(values, 95) / percentile(peer, 95),
            ]
        )
    payload = {
        "model": str(model),
        "shipped_layout": shipped.facts.default_fim_mode.value
        if shipped.facts.default_fim_mode
        else None,
        "file": str(args.file),
        "threads": args.threads,
        "ctx": args.ctx,
        "requests": len(requests),
        "n_predict": args.n_predict,
        "latency_s": lat,
        "evaluated_tokens": evaluated,
        "generated_tokens": generated,
    }
    headers = ["system", "p50 ms", "p95 ms", "median prompt tokens evaluated",
               "tokens generated (mean)", "p50 / llama-server PSM", "p95 / llama-server PSM"]  # fmt: skip
    finish("infill_latency", payload, headers, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
