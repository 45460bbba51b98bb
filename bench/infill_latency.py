"""Infill latency while typing: the in-process engine against llama-server's /infill.

Both run the same GGUF with the same threads and context, on the same file and the same
cursor positions: at each position the rest of a real line is typed one character at a
time, and every keystroke asks for an infill of --n-predict greedy tokens. llama-server
(built by bench/build_peer.sh from the same llama.cpp) keeps its prompt cache
(``cache_prompt``, one slot) and listens on 127.0.0.1 only. Requests to the two
alternate keystroke by keystroke, so load from other processes hits both alike.

The default model has no FIM tokens, so a copy with FIM ids declared on three of its
unused special tokens is written to bench/build/ (it infills nonsense, but it computes
exactly what a FIM model of its size computes). Pass --model to use a real FIM model.

Rows: llama-server in its default PSM layout and with --spm-infill, and the engine in
both layouts (one engine each, so neither thrashes the other's KV cache). Target:
llamacode p50 at most 0.7 of llama-server's default.

    bench/build_peer.sh && .venv/bin/python bench/infill_latency.py
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

from common import BENCH, OUT, default_model, finish, median, peer_binary, percentile

from runtime.config import EngineConfig, GenerationConfig
from runtime.engine import Engine
from runtime.fim import FimMode
from runtime.model_facts import read_facts

SOURCE = Path(sysconfig.get_paths()["stdlib"]) / "bisect.py"
# SmolLM2's <issue_start>, <issue_comment>, <issue_closed> and <|endoftext|>.
FIM_IDS = {"fim_pre": 8, "fim_suf": 9, "fim_mid": 10, "eot": 0}


def fim_copy(model: Path) -> Path:
    """``model`` itself if it declares FIM tokens, else a copy that does (in bench/build/)."""
    if read_facts(model).fim is not None:
        return model
    import gguf
    from gguf.scripts.gguf_new_metadata import MetadataDetails, copy_with_new_metadata

    out = BENCH / "build" / f"{model.stem}.fim.gguf"
    if out.is_file() and out.stat().st_mtime > model.stat().st_mtime:
        return out
    reader = gguf.GGUFReader(str(model), "r")
    arch = reader.fields["general.architecture"].contents()
    tmp = out.with_name(out.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), arch=arch, endianess=reader.endianess)
    new = {
        f"tokenizer.ggml.{name}_token_id": MetadataDetails(gguf.GGUFValueType.UINT32, value)
        for name, value in FIM_IDS.items()
    }
    copy_with_new_metadata(reader, writer, new, [])
    tmp.replace(out)
    return out


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

    def __init__(self, model: Path, threads: int, n_ctx: int, spm: bool, log: Path):
        self.port = free_port()
        cmd = [
            str(peer_binary("llama-server")), "-m", str(model), "--host", "127.0.0.1",
            "--port", str(self.port), "-c", str(n_ctx), "-t", str(threads), "-tb", str(threads),
            "-np", "1", "-fa", "off", "-b", "2048", "-ub", "512",
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
    args = parser.parse_args()
    model = fim_copy(args.model or default_model())
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
        )
        for mode in (FimMode.PSM, FimMode.SPM)
    }
    systems = {
        "llama-server /infill PSM (default)": (servers[FimMode.PSM], None),
        "llama-server /infill --spm-infill": (servers[FimMode.SPM], None),
        "llamacode PSM": (None, FimMode.PSM),
        "llamacode SPM": (None, FimMode.SPM),
    }
    lat: dict[str, list[float]] = {s: [] for s in systems}
    evaluated: dict[str, list[int]] = {s: [] for s in systems}
    generated: dict[str, list[int]] = {s: [] for s in systems}
    try:
        for mode, engine in engines.items():  # warm-up: load pages, first full prompt
            engine.infill(*requests[0], config=GenerationConfig(max_tokens=2, fim_mode=mode))
            servers[mode].infill(*requests[0], n_predict=2)
        for n, (prefix, suffix) in enumerate(requests):
            for name, (server, mode) in systems.items():
                if server is not None:
                    seconds, reply = server.infill(prefix, suffix, args.n_predict)
                    lat[name].append(seconds)
                    evaluated[name].append(reply["timings"]["prompt_n"])
                    generated[name].append(reply["tokens_predicted"])
                    continue
                config = GenerationConfig(
                    max_tokens=args.n_predict, temperature=0.0, fim_mode=mode, stop_at_dedent=False
                )
                start = time.perf_counter()
                g = engines[mode].infill(prefix, suffix, config=config)
                lat[name].append(time.perf_counter() - start)
                evaluated[name].append(g.evaluated_tokens)
                generated[name].append(g.generated_tokens)
            if n % 10 == 0:
                print(f"{n + 1}/{len(requests)} requests", file=sys.stderr)
    finally:
        for server in servers.values():
            server.close()
        for engine in engines.values():
            engine.close()
    peer_p50 = median(lat[next(iter(systems))])
    rows = []
    for name in systems:
        values = lat[name]
        rows.append(
            [
                name,
                median(values) * 1000,
                percentile(values, 95) * 1000,
                sum(evaluated[name]) / len(values),
                sum(generated[name]) / len(values),
                median(values) / peer_p50,
            ]
        )
    payload = {
        "model": str(model),
        "file": str(args.file),
        "threads": args.threads,
        "ctx": args.ctx,
        "requests": len(requests),
        "n_predict": args.n_predict,
        "latency_s": lat,
        "evaluated_tokens": evaluated,
        "generated_tokens": generated,
    }
    headers = ["system", "p50 ms", "p95 ms", "prompt tokens evaluated", "tokens generated",
               "p50 / llama-server default p50"]  # fmt: skip
    finish("infill_latency", payload, headers, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
