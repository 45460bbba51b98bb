"""Request storms: edits and completion requests at typing speed and as fast as a client
can send them. Every request is answered, the model worker's queue stays bounded, the
server's memory stays flat, and requests cancelled before their turn never run the model.

Latency percentiles and memory are printed (``pytest -s``); they are not asserted."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from llamacode.lsp.stats import percentile
from tests.reliability.conftest import started
from tests.reliability.rawlsp import RawServer, frame, inline_params

TYPED = "    total = value + add(x, y)\n    if total:\n        return total\n"
REQUEST_CANCELLED = -32800


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@dataclass
class Typist:
    """Types ``TYPED`` over and over into one document, asking for a completion per key."""

    server: RawServer
    uri: str
    line: int = 1
    column: int = 0
    version: int = 1
    sent: dict[int, float] = field(default_factory=dict)
    cancelled: set[int] = field(default_factory=set)
    keys: int = 0

    def key(self, char: str) -> None:
        self.version += 1
        at = {"line": self.line, "character": self.column}
        self.server.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": self.uri, "version": self.version},
                "contentChanges": [{"range": {"start": at, "end": at}, "text": char}],
            },
        )
        if char == "\n":
            self.line, self.column = self.line + 1, 0
        else:
            self.column += 1
        self.keys += 1
        method = "textDocument/completion" if self.keys % 11 == 0 else None
        params = inline_params(self.uri, self.line, self.column)
        if method:
            params = {k: v for k, v in params.items() if k != "context"}
        msg_id = self.server.start_request(method or "textDocument/inlineCompletion", params)
        self.sent[msg_id] = time.monotonic()
        if self.keys % 7 == 0:  # the editor gives up on some requests itself
            self.server.notify("$/cancelRequest", {"id": msg_id})
            self.cancelled.add(msg_id)

    def type_for(
        self, seconds: float, interval: float, rss: list[float], keys: int | None = None
    ) -> None:
        """Type for ``seconds`` (or ``keys`` keys) with ``interval`` between keys."""
        end = time.monotonic() + seconds
        next_sample = 0.0
        i = 0
        while time.monotonic() < end if keys is None else i < keys:
            self.key(TYPED[self.keys % len(TYPED)])
            i += 1
            if interval:
                time.sleep(interval)
            if time.monotonic() >= next_sample:
                rss.append(rss_mib(self.server.proc.pid))
                next_sample = time.monotonic() + 0.25


def latencies_ms(server: RawServer, ids) -> list[float]:
    return [(server.answered_at[i] - t0) * 1000.0 for i, t0 in ids]


def run_storm(server: RawServer, seconds: float, flood_keys: int) -> None:
    root = server.root
    uri = (root / "storm.py").as_uri()
    server.open(uri, "def f():\n")
    typist = Typist(server, uri)
    rss: list[float] = []
    typist.type_for(min(1.0, seconds / 10), 0.05, [])  # warm-up: caches, allocator
    warm = len(typist.sent)
    before = server.stats()
    typing_s, burst_s = seconds * 2 / 3, seconds / 3
    typist.type_for(typing_s, 0.05, rss)  # 20 keys a second
    typing_ids = list(typist.sent.items())[warm:]
    typist.type_for(burst_s, 0.002, rss)  # 500 keys a second: key repeat, macros
    burst_ids = list(typist.sent.items())[warm + len(typing_ids) :]
    typist.type_for(0, 0.0, rss, keys=flood_keys)  # as fast as the pipe takes them
    flood_ids = list(typist.sent.items())[warm + len(typing_ids) + len(burst_ids) :]

    for msg_id in typist.sent:
        answer = server.response(msg_id, timeout=60)
        if "error" in answer:
            assert answer["error"]["code"] == REQUEST_CANCELLED, answer
            assert msg_id in typist.cancelled
    after = server.stats()
    rss.append(rss_mib(server.proc.pid))

    typing = latencies_ms(server, typing_ids)
    burst = latencies_ms(server, burst_ids)
    flood = latencies_ms(server, flood_ids)
    runs = after["model"]["runs"] - before["model"]["runs"]
    requests = after["requests"] - before["requests"]
    print(
        f"\nstorm {seconds:.0f} s: {len(typing)} requests at 20 keys/s: "
        f"p50 {percentile(typing, 50):.1f} ms, p99 {percentile(typing, 99):.1f} ms; "
        f"{len(burst)} requests at 500 keys/s: p50 {percentile(burst, 50):.1f} ms, "
        f"p99 {percentile(burst, 99):.1f} ms; {len(flood)} requests flooded: "
        f"p50 {percentile(flood, 50):.1f} ms, p99 {percentile(flood, 99):.1f} ms\n"
        f"model runs {runs} for {requests} requests reaching the server "
        f"({len(typist.cancelled)} cancelled by the client, "
        f"{after['superseded'] - before['superseded']} superseded); "
        f"worker queue max {after['model']['queue']['max_waiting']}\n"
        f"server RSS MiB: first {rss[0]:.1f}, max {max(rss):.1f}, last {rss[-1]:.1f}"
    )
    assert after["errors"] == 0
    assert after["model"]["queue"]["waiting"] == 0
    # One in-flight request per document: a burst collapses onto a few model runs.
    assert runs < requests
    # The worker never holds more than a chunk of input's worth of requests, and those
    # it skips cost nothing: the queue does not grow with the length of the storm.
    assert after["model"]["queue"]["max_waiting"] <= 64
    assert max(rss) - rss[0] < 40, f"server memory grew: {rss[0]:.1f} -> {max(rss):.1f} MiB"


@pytest.fixture
def storm_server(tmp_path: Path, middle_gguf: Path):
    root = tmp_path / "ws"
    root.mkdir()
    yield from started(middle_gguf, root, tmp_path / "server.log", maxTokens=16)


def test_storm_of_edits_and_completions_is_answered_with_bounded_queue_and_memory(storm_server):
    run_storm(storm_server, 9.0, flood_keys=2000)


@pytest.mark.slow
def test_sixty_second_storm(storm_server):
    run_storm(storm_server, 60.0, flood_keys=10000)


def test_cancelled_requests_never_reach_the_model(tmp_path: Path, endless_gguf: Path):
    root = tmp_path / "ws"
    root.mkdir()
    server_gen = started(endless_gguf, root, tmp_path / "server.log", "--ctx", "32768")
    server = next(server_gen)
    try:
        docs = [(root / f"d{i}.py").as_uri() for i in range(12)]
        for uri in docs:
            server.open(uri, "def f():\n    ")
        before = server.stats()
        # Keep the model worker busy with a chat that would never end by itself.
        chat = server.start_request(
            "llamacode/chat",
            {
                "messages": [{"role": "user", "content": "x"}],
                "maxTokens": 30000,
                "workDoneToken": "busy",
            },
        )
        server.wait_for(
            lambda m: m.get("method") == "$/progress" and m["params"]["value"]["kind"] == "report"
        )
        queued = [
            server.start_request("textDocument/inlineCompletion", inline_params(u, 1, 4))
            for u in docs
        ]
        for msg_id in queued[::2]:  # the editor cancels half of them ...
            server.notify("$/cancelRequest", {"id": msg_id})
        for n, uri in enumerate(docs[1::2]):  # ... and typing makes the others obsolete
            at = {"line": 1, "character": 4}
            server.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": 2 + n},
                    "contentChanges": [{"range": {"start": at, "end": at}, "text": "z"}],
                },
            )
        server.notify("window/workDoneProgress/cancel", {"token": "busy"})
        assert server.response(chat, timeout=60)["result"]["stopReason"] == "cancelled"
        for msg_id in queued:
            answer = server.response(msg_id)
            assert answer.get("result", {"items": []})["items"] == [] or "error" in answer
        after = server.stats()
        engine_before, engine_after = before["engine"], after["engine"]
        started_runs = (engine_after["requests"] - engine_after["cancelled_before_start"]) - (
            engine_before["requests"] - engine_before["cancelled_before_start"]
        )
        assert started_runs == 1  # the chat, and nothing else
        assert after["model"]["runs"] == before["model"]["runs"]
        cancelled = after["client_cancelled"] + after["superseded"]
        assert cancelled - before["client_cancelled"] - before["superseded"] >= len(docs) // 2
    finally:
        server_gen.close()


def test_request_cancelled_as_the_model_frees_up_never_runs(tmp_path: Path, endless_gguf: Path):
    """``$/cancelRequest`` read in the same batch as the end of the job ahead of it: the
    model worker takes the next job at once, before the event loop has passed the asyncio
    cancellation on, so the request's own token must already be cancelled."""
    root = tmp_path / "ws"
    root.mkdir()
    server_gen = started(endless_gguf, root, tmp_path / "server.log", "--ctx", "4096")
    server = next(server_gen)
    try:
        uri = (root / "d.py").as_uri()
        server.open(uri, "def f():\n    ")
        server.open((root / "other.py").as_uri(), "")
        for attempt in range(5):
            before = server.stats()
            chat = server.start_request(
                "llamacode/chat",
                {
                    "messages": [{"role": "user", "content": "x"}],
                    "maxTokens": 3000,
                    "workDoneToken": f"busy{attempt}",
                },
            )
            server.wait_for(
                lambda m: (
                    m.get("method") == "$/progress" and m["params"]["value"]["kind"] == "report"
                )
            )
            queued = server.start_request("textDocument/inlineCompletion", inline_params(uri, 1, 4))
            deadline = time.monotonic() + 30
            while server.stats()["model"]["queue"]["waiting"] < 2:  # the chat and the request
                assert time.monotonic() < deadline, "the request never reached the model queue"
            cancel = {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": queued}}
            stop = {
                "jsonrpc": "2.0",
                "method": "window/workDoneProgress/cancel",
                "params": {"token": f"busy{attempt}"},
            }
            # Edits read in the same chunk keep the event loop busy after the chat's cancel.
            other = (root / "other.py").as_uri()
            edits = b"".join(
                frame(
                    {
                        "jsonrpc": "2.0",
                        "method": "textDocument/didChange",
                        "params": {
                            "textDocument": {"uri": other, "version": 100 * attempt + n},
                            "contentChanges": [{"text": f"x = {n}\n"}],
                        },
                    }
                )
                for n in range(300)
            )
            server.send_bytes(frame(cancel) + frame(stop) + edits)
            assert server.response(chat, timeout=60)["result"]["stopReason"] == "cancelled"
            answer = server.response(queued)
            assert (
                answer.get("error", {}).get("code") == REQUEST_CANCELLED
                or not answer.get("result", {"items": []})["items"]
            )
            after = server.stats()
            started_runs = (
                after["engine"]["requests"] - after["engine"]["cancelled_before_start"]
            ) - (before["engine"]["requests"] - before["engine"]["cancelled_before_start"])
            assert started_runs == 1  # the chat only
    finally:
        server_gen.close()
