"""`llamacode serve --tcp`: the same server over a TCP socket on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import subprocess
import time

from llamacode.lsp.client import serve_argv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_message(stream) -> dict:
    length = 0
    while True:
        line = stream.readline()
        assert line, "server closed the connection"
        if line == b"\r\n":
            break
        name, _, value = line.decode("ascii").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return json.loads(stream.read(length))


def test_tcp_transport_answers_initialize_on_localhost():
    port = free_port()
    argv = serve_argv("--threads", "1")
    argv.remove("--stdio")
    proc = subprocess.Popen([*argv, "--tcp", "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=30)
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not listen"
                time.sleep(0.05)
        with conn, conn.makefile("rb") as stream:
            body = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"processId": None, "rootUri": None, "capabilities": {}},
                }
            ).encode()
            conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            reply = read_message(stream)
            assert reply["id"] == 1
            assert "inlineCompletionProvider" in reply["result"]["capabilities"]
            assert reply["result"]["serverInfo"]["name"] == "llamacode"
    finally:
        proc.kill()
        proc.wait()
