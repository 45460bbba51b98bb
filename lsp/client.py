"""A small synchronous LSP client over a subprocess's stdio (for the demo and benchmarks).

Threads, not asyncio: a reader thread resolves response futures and answers the few
requests a server sends to its client (progress tokens, configuration).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any, BinaryIO

from llamacode.runtime.children import python_argv
from llamacode.runtime.errors import LlamacodeError


class LspError(LlamacodeError):
    """The server answered a request with an error."""


def serve_argv(*flags: str) -> list[str]:
    """The command that starts ``llamacode serve --stdio`` with this Python."""
    launcher = "from llamacode.runtime.cli import main; raise SystemExit(main())"
    return python_argv("-c", launcher, "serve", "--stdio", *flags)


def file_uri(path: str | Path) -> str:
    return Path(path).resolve().as_uri()


class LspClient:
    """Start a server process and talk JSON-RPC to it."""

    def __init__(
        self,
        argv: Sequence[str],
        stderr: BinaryIO | int | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        """``cwd``: where the server runs (editors start it in the workspace folder)."""
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd
        )
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[Any]] = {}
        self._write_lock = threading.Lock()
        self.notifications: list[dict[str, Any]] = []
        self.progress: dict[Any, list[dict[str, Any]]] = {}
        self.on_progress: Callable[[Any, dict[str, Any]], None] | None = None
        self._reader = threading.Thread(target=self._read_loop, daemon=True)
        self._reader.start()

    # Sending ------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        with self._write_lock:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.proc.stdin.flush()

    def request_future(self, method: str, params: Any = None) -> Future[Any]:
        msg_id = next(self._ids)
        future: Future[Any] = Future()
        future.msg_id = msg_id  # type: ignore[attr-defined]
        self._pending[msg_id] = future
        self._send({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
        return future

    def request(self, method: str, params: Any = None, timeout: float = 120.0) -> Any:
        return self.request_future(method, params).result(timeout)

    def notify(self, method: str, params: Any = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def cancel(self, future: Future[Any]) -> None:
        self.notify("$/cancelRequest", {"id": future.msg_id})  # type: ignore[attr-defined]

    # Receiving ----------------------------------------------------------------------

    def _read_loop(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = 0
            while True:
                line = stream.readline()
                if not line:
                    self._fail_pending("the server exited")
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value.strip())
            message = json.loads(stream.read(length))
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message and "method" not in message:
            future = self._pending.pop(message["id"], None)
            if future is None:
                return
            if "error" in message:
                err = message["error"]
                future.set_exception(LspError(f"{err.get('code')}: {err.get('message')}"))
            else:
                future.set_result(message.get("result"))
            return
        method = message.get("method")
        params = message.get("params")
        if "id" in message:
            result: Any = None
            if method == "workspace/configuration":
                result = [None for _ in params.get("items", [])]
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})
            return
        if method == "$/progress":
            self.progress.setdefault(params["token"], []).append(params["value"])
            if self.on_progress is not None:
                self.on_progress(params["token"], params["value"])
        self.notifications.append(message)

    def _fail_pending(self, reason: str) -> None:
        for future in list(self._pending.values()):
            if not future.done():
                future.set_exception(LspError(reason))
        self._pending.clear()

    # Session ------------------------------------------------------------------------

    def initialize(self, root: Path, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """initialize + initialized, as an editor with inline completion would."""
        capabilities = {
            "general": {"positionEncodings": ["utf-16"]},
            "window": {"workDoneProgress": True},
            "workspace": {"configuration": True},
            "textDocument": {
                "synchronization": {"dynamicRegistration": False},
                "inlineCompletion": {"dynamicRegistration": False},
                "completion": {"completionItem": {"snippetSupport": False}},
            },
        }
        result = self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": root.resolve().as_uri(),
                "capabilities": capabilities,
                "initializationOptions": options or {},
            },
        )
        self.notify("initialized", {})
        return result

    def wait_for_model(self, timeout: float = 300.0, *, until_all: bool = False) -> dict[str, Any]:
        """Poll ``llamacode/stats`` until the model is loaded (or failed); with ``until_all``,
        also until the model for explicit requests has loaded."""
        deadline = time.monotonic() + timeout
        while True:
            stats = self.request("llamacode/stats")
            model = stats["model"]
            done = model["state"] == "failed" or (
                model["state"] == "ready" and not (until_all and model.get("loading_more"))
            )
            if done or time.monotonic() > deadline:
                return stats
            time.sleep(0.05)

    def close(self) -> int:
        """shutdown + exit, then wait for the process."""
        try:
            if self.proc.poll() is None:
                self.request("shutdown", None, timeout=30)
                self.notify("exit")
        except (LspError, OSError, TimeoutError):
            pass
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
