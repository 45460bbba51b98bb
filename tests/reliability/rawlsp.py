"""A raw JSON-RPC client for the language server: frames built byte by byte.

Unlike ``lsp.client`` (a well-behaved editor), this client can send anything: wrong
lengths, broken JSON, frames split or glued together. The server's own output is read
with a strict parser, so a server that writes a malformed frame fails the test.
"""

from __future__ import annotations

import itertools
import json
import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from llamacode.lsp.client import serve_argv

CAPABILITIES = {
    "general": {"positionEncodings": ["utf-16"]},
    "window": {"workDoneProgress": False},
    "textDocument": {"inlineCompletion": {}, "completion": {}},
}


def frame(body: bytes | str | dict[str, Any], length: int | None = None) -> bytes:
    """One frame; ``length`` overrides the true byte length of ``body``."""
    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    n = len(body) if length is None else length
    return b"Content-Length: %d\r\n\r\n" % n + body


class ServerGone(AssertionError):
    """The server closed its output while an answer was awaited."""


class RawServer:
    """``llamacode serve --stdio`` in a subprocess, spoken to in raw bytes."""

    def __init__(self, *flags: str, stderr_path: Path | None = None) -> None:
        self._stderr = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen(
            serve_argv("--threads", "1", *flags),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._ids = itertools.count(1)
        self.root: Path | None = None  # the workspace root given to initialize
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.received: list[dict[str, Any]] = []  # everything seen so far, in order
        self.malformed: list[bytes] = []  # frames from the server that did not parse
        self.answered_at: dict[Any, float] = {}  # response id -> time.monotonic() on arrival
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # Output ----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    self._inbox.put(None)
                    return
                if line == b"\r\n":
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None:
                self.malformed.append(line)
                continue
            body = stream.read(length)
            try:
                message = json.loads(body)
            except ValueError:
                self.malformed.append(body)
                continue
            if isinstance(message, dict) and "id" in message:
                # JSON-RPC answers a frame whose id cannot be read with an error of id null.
                null_id_error = message["id"] is None and "error" in message
                if not isinstance(message["id"], int | str) and not null_id_error:
                    self.malformed.append(body)  # the server must not echo such an id
                    continue
                if "method" in message:
                    self._answer_server_request(message)
                else:
                    self.answered_at[message["id"]] = time.monotonic()
            self._inbox.put(message)

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        result: Any = None
        if message["method"] == "workspace/configuration":
            result = [None for _ in message["params"]["items"]]
        self.send({"jsonrpc": "2.0", "id": message["id"], "result": result})

    def next_message(self, timeout: float) -> dict[str, Any]:
        """The next message the server sent (ServerGone once it closed its output)."""
        try:
            message = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"no message from the server in {timeout} s") from None
        if message is None:
            self._inbox.put(None)
            raise ServerGone(f"the server closed its output (exit code {self.proc.poll()})")
        self.received.append(message)
        return message

    def wait_for(self, predicate, timeout: float = 30.0) -> dict[str, Any]:
        """The first message (from now on) that ``predicate`` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the awaited message did not come")
            message = self.next_message(left)
            if predicate(message):
                return message

    def response(self, msg_id: Any, timeout: float = 30.0) -> dict[str, Any]:
        """The response to request ``msg_id`` (already received ones included)."""
        for message in self.received:
            if _is_response(message, msg_id):
                return message
        return self.wait_for(lambda m: _is_response(m, msg_id), timeout)

    # Input -----------------------------------------------------------------------------

    def send_bytes(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(frame(message))

    def request_message(self, method: str, params: Any = None) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}

    def start_request(self, method: str, params: Any = None) -> int:
        message = self.request_message(method, params)
        self.send(message)
        return message["id"]

    def request(self, method: str, params: Any = None, timeout: float = 30.0) -> dict[str, Any]:
        """Send a request and return its whole response message (result or error)."""
        return self.response(self.start_request(method, params), timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    # Session ---------------------------------------------------------------------------

    def initialize(self, root: Path, options: dict[str, Any] | None = None, **extra: Any):
        answer = self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": root.as_uri(),
                "capabilities": CAPABILITIES,
                "initializationOptions": options or {},
                **extra,
            },
        )
        assert "result" in answer, answer
        self.root = root
        self.notify("initialized", {})
        return answer["result"]

    def stats(self, timeout: float = 30.0) -> dict[str, Any]:
        answer = self.request("llamacode/stats", None, timeout)
        assert "result" in answer, answer
        return answer["result"]

    def wait_for_model(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            stats = self.stats()
            if stats["model"]["state"] in ("ready", "failed") or time.monotonic() > deadline:
                return stats
            time.sleep(0.05)

    def open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        item = {"uri": uri, "languageId": language, "version": version, "text": text}
        self.notify("textDocument/didOpen", {"textDocument": item})

    def alive(self, timeout: float = 30.0) -> bool:
        """The server answers a request (and so still reads and writes frames)."""
        answer = self.request("llamacode/stats", None, timeout=timeout)
        return "result" in answer

    def close(self, timeout: float = 30.0) -> int:
        """shutdown + exit if still running; kill after ``timeout``; the exit code."""
        try:
            if self.proc.poll() is None:
                self.request("shutdown", None, timeout=timeout)
                self.notify("exit")
        except (OSError, TimeoutError, ServerGone):
            pass
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self._stderr is not subprocess.DEVNULL:
                self._stderr.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _is_response(message: dict[str, Any], msg_id: Any) -> bool:
    return message.get("id") == msg_id and "method" not in message


def inline_params(uri: str, line: int, character: int, invoked: bool = False) -> dict[str, Any]:
    return {
        "textDocument": {"uri": uri},
        "position": {"line": line, "character": character},
        "context": {"triggerKind": 1 if invoked else 2},
    }
