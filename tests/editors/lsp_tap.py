"""Run a language server and copy every LSP message it exchanges to a JSON-lines file.

Usage: python lsp_tap.py LOG SERVER_COMMAND...   (a standalone script: the editor starts it
with its own working directory). The end-to-end driver reads LOG to wait on the server's
own signals (the model's state in ``llamacode/stats`` answers, each inline completion's
answer) instead of on fixed timeouts. Each line is ``{"from": "client"|"server", "message":
...}``; the bytes pass through unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import BinaryIO

_CHUNK = 1 << 16


class _Frames:
    """Content-Length frames out of a byte stream (well-formed traffic: an editor and llamacode)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        bodies = []
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return bodies
            length = None
            for line in bytes(self._buf[:end]).split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length is None or len(self._buf) < end + 4 + length:
                return bodies
            bodies.append(bytes(self._buf[end + 4 : end + 4 + length]))
            del self._buf[: end + 4 + length]


def _pump(source: int, sink: BinaryIO, side: str, log: BinaryIO, lock: threading.Lock) -> None:
    frames = _Frames()
    while True:
        try:
            data = os.read(source, _CHUNK)
        except OSError:
            data = b""
        if not data:
            sink.close()
            return
        try:
            sink.write(data)
            sink.flush()
        except (BrokenPipeError, ValueError):
            return
        for body in frames.feed(data):
            try:
                message = json.loads(body)
            except ValueError:
                message = {"unparsed": body[:200].decode("utf-8", "replace")}
            line = json.dumps({"from": side, "message": message}).encode() + b"\n"
            with lock:
                log.write(line)
                log.flush()


def main(argv: list[str]) -> int:
    log_path, command = argv[0], argv[1:]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert server.stdin is not None and server.stdout is not None
    lock = threading.Lock()
    with open(log_path, "ab") as log:
        stdout = os.fdopen(sys.stdout.fileno(), "wb", buffering=0)
        pumps = [
            threading.Thread(
                target=_pump, args=(sys.stdin.fileno(), server.stdin, "client", log, lock)
            ),
            threading.Thread(
                target=_pump, args=(server.stdout.fileno(), stdout, "server", log, lock)
            ),
        ]
        for pump in pumps:
            pump.daemon = True
            pump.start()
        code = server.wait()
        pumps[1].join(timeout=5)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
