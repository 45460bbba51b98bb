"""Trust: workspace settings cannot choose the model unless the user trusts the workspace,
commands take only their own names and validated arguments, files outside the workspace
roots are neither completed nor read for context, and TCP listens on localhost."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import pytest

from llamacode.lsp.client import serve_argv
from tests.reliability.conftest import MIDDLE
from tests.reliability.rawlsp import RawServer, frame, inline_params

INVALID_PARAMS = -32602


def model_path(server: RawServer) -> str:
    stats = server.wait_for_model()
    assert stats["model"]["state"] == "ready", stats["model"]
    return Path(stats["model"]["path"]).name


@pytest.fixture
def cli_model_server(tmp_path: Path, middle_gguf: Path):
    """A server whose model comes from the command line (the user's own choice)."""
    server = RawServer("--model", str(middle_gguf), stderr_path=tmp_path / "server.log")
    yield server
    server.close()
    server.kill()


def test_workspace_model_path_is_ignored_unless_trusted(cli_model_server, tmp_path, endless_gguf):
    server = cli_model_server
    root = tmp_path / "ws"
    root.mkdir()
    server.initialize(root, {"modelPath": str(endless_gguf)})  # no trusted: ignored
    assert model_path(server) == "tiny-middle.gguf"
    settings = {"llamacode": {"modelPath": str(endless_gguf), "trusted": True}}
    server.notify("workspace/didChangeConfiguration", {"settings": settings})
    stats = server.stats()
    assert stats["settings"]["trusted"] is False  # a workspace cannot trust itself
    assert model_path(server) == "tiny-middle.gguf"


def test_trust_flag_lets_workspace_settings_name_the_model(tmp_path, middle_gguf, endless_gguf):
    server = RawServer("--trust", "--model", str(middle_gguf), stderr_path=tmp_path / "log")
    try:
        server.initialize(tmp_path, {})
        assert model_path(server) == "tiny-middle.gguf"
        settings = {"llamacode": {"modelPath": str(endless_gguf)}}
        server.notify("workspace/didChangeConfiguration", {"settings": settings})
        deadline = time.monotonic() + 30
        while model_path(server) != "tiny-endless.gguf":
            assert time.monotonic() < deadline, "the trusted model path was not loaded"
            time.sleep(0.05)
    finally:
        server.close()
        server.kill()


@pytest.fixture
def server(tmp_path: Path, middle_gguf: Path):
    root = tmp_path / "ws"
    root.mkdir()
    server = RawServer("--model", str(middle_gguf), stderr_path=tmp_path / "server.log")
    server.initialize(root, {}, workspaceFolders=[{"uri": root.as_uri(), "name": "ws"}])
    server.wait_for_model()
    yield server
    server.close()
    server.kill()


def selection(uri: str) -> dict:
    return {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}},
    }


def execute(server: RawServer, command: str, arguments) -> dict:
    return server.request("workspace/executeCommand", {"command": command, "arguments": arguments})


def test_execute_command_takes_only_its_own_commands_with_valid_arguments(server):
    uri = (server.root / "a.py").as_uri()
    server.open(uri, "def f():\n    return 1\n")
    bad = [
        ("python.runFile", [uri]),
        ("llamacode.shell", ["rm -rf /"]),
        ("llamacode.accept", []),
        ("llamacode.accept", [7]),
        ("llamacode.accept", ["s1", "extra"]),
        ("llamacode.acceptPartial", ["s1", -1]),
        ("llamacode.acceptPartial", ["s1", True]),
        ("llamacode.dismiss", [{"id": "s1"}]),
        ("llamacode.explain", []),
        ("llamacode.explain", ["/etc/passwd"]),
        ("llamacode.fix", [{"textDocument": {"uri": 5}, "range": None}]),
        ("llamacode.docstring", [{"textDocument": {"uri": uri}}]),
        ("llamacode.explain", [selection((server.root / "not-open.py").as_uri())]),
    ]
    for command, arguments in bad:
        answer = execute(server, command, arguments)
        assert answer.get("error", {}).get("code") == INVALID_PARAMS, (command, answer)
    # Unknown suggestion ids are refused without an error: nothing to record.
    assert execute(server, "llamacode.accept", ["s999"])["result"] is False
    assert server.alive()


def test_files_outside_the_workspace_get_no_completion_chat_or_commands(server, tmp_path):
    inside = (server.root / "a.py").as_uri()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = [
        (elsewhere / "secret.py").as_uri(),
        server.root.as_uri() + "/../elsewhere/dotdot.py",
        server.root.as_uri() + "-sibling/prefix.py",
    ]
    text = "def f():\n    \n"
    for uri in [inside, *outside]:
        server.open(uri, text)
    before = server.stats()
    answer = server.request("textDocument/inlineCompletion", inline_params(inside, 1, 4))
    assert [i["insertText"] for i in answer["result"]["items"]] == [MIDDLE]
    for uri in outside:
        answer = server.request("textDocument/inlineCompletion", inline_params(uri, 1, 4))
        assert answer["result"]["items"] == [], uri
        answer = execute(server, "llamacode.explain", [selection(uri)])
        assert answer["error"]["code"] == INVALID_PARAMS
        assert "outside the workspace" in answer["error"]["message"]
        chat = {"messages": [{"role": "user", "content": "?"}], "textDocument": {"uri": uri}}
        answer = server.request("llamacode/chat", chat)
        assert answer["error"]["code"] == INVALID_PARAMS
    after = server.stats()
    assert after["outside_workspace"] - before["outside_workspace"] == len(outside)
    assert after["model"]["runs"] - before["model"]["runs"] == 1


def test_workspace_folders_added_later_are_inside(server, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    uri = (other / "b.py").as_uri()
    server.open(uri, "def f():\n    \n")
    answer = server.request("textDocument/inlineCompletion", inline_params(uri, 1, 4))
    assert answer["result"]["items"] == []
    event = {"added": [{"uri": other.as_uri(), "name": "other"}], "removed": []}
    server.notify("workspace/didChangeWorkspaceFolders", {"event": event})
    answer = server.request("textDocument/inlineCompletion", inline_params(uri, 1, 4))
    assert [i["insertText"] for i in answer["result"]["items"]] == [MIDDLE]


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp{,6})."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            next(f)
            for row in f:
                local, state = row.split()[1], row.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def test_tcp_listens_on_localhost_only_and_survives_garbage(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = serve_argv("--threads", "1")
    argv.remove("--stdio")
    proc = subprocess.Popen([*argv, "--tcp", "--port", str(port)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not listening_addresses(port):
            assert time.monotonic() < deadline, "the server did not listen"
            time.sleep(0.05)
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            stream = conn.makefile("rb")
            conn.sendall(b"Content-Length: 99999999999\r\n\r\n" + b"\x00" * 70_000)
            conn.sendall(b"X" * 100_000 + b"\r\n")  # a header line longer than any limit
            init = {"processId": None, "rootUri": None, "capabilities": {}}
            conn.sendall(frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}))
            length = 0
            while (line := stream.readline()) != b"\r\n":
                assert line, "the server closed the connection"
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reply = json.loads(stream.read(length))
            assert reply["id"] == 1 and "capabilities" in reply["result"]
    finally:
        proc.kill()
        proc.wait()
