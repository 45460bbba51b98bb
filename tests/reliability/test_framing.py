"""Hostile framing over stdio: every broken frame is answered with a protocol error or
ignored, and the server keeps answering the requests that follow it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.conftest import MIDDLE, started
from tests.reliability.rawlsp import RawServer, frame, inline_params

PARSE_OR_INVALID = {-32700, -32600, -32602}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, middle_gguf: Path):
    root = tmp_path_factory.mktemp("ws")
    log = root.parent / "server.log"
    yield from started(middle_gguf, root, log, maxTokens=16)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def stats_frame(server: RawServer) -> tuple[int, bytes]:
    message = server.request_message("llamacode/stats")
    return message["id"], json.dumps(message).encode()


def test_too_short_content_length_is_skipped_and_the_stream_resynchronizes(server):
    _, body = stats_frame(server)
    server.send_bytes(frame(body, len(body) - 3))
    assert server.alive()


def test_too_long_content_length_is_cut_at_the_next_header(server):
    first, body = stats_frame(server)
    second, follow = stats_frame(server)
    server.send_bytes(frame(body, len(body) + 40) + frame(follow))
    # Both are answered: the first frame's body ends where the next header begins.
    assert "result" in server.response(first)
    assert "result" in server.response(second)


def test_missing_content_length_is_ignored(server):
    msg_id, body = stats_frame(server)
    server.send_bytes(b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n" + body)
    assert server.alive()
    assert not any(m.get("id") == msg_id for m in server.received)


def test_huge_content_length_neither_allocates_nor_waits(server):
    before = rss_kib(server.proc.pid)
    server.send_bytes(b'Content-Length: 99999999999999\r\n\r\n{"jsonrpc": ')
    server.send_bytes(b"Content-Length: 9999999999\r\n\r\n" + b"x" * 100_000)
    assert server.alive()
    assert rss_kib(server.proc.pid) - before < 50_000


def test_header_without_end_is_dropped_when_it_grows_too_long(server):
    server.send_bytes(b"X-Noise: " + b"a" * 200_000)
    assert server.alive()


def test_invalid_json_is_ignored(server):
    server.send_bytes(frame(b'{"jsonrpc": "2.0", "id": 9000, "method": '))
    server.send_bytes(frame(b"\xff\xfe\x00not json"))
    server.send_bytes(frame(b"[" * 100_000))
    assert server.alive()
    assert not any(m.get("id") == 9000 for m in server.received)


def test_request_with_invalid_params_gets_an_error_not_silence(server):
    answer = server.request("textDocument/inlineCompletion", {"textDocument": 5})
    assert answer["error"]["code"] == -32602
    answer = server.request("textDocument/completion", None)
    assert answer["error"]["code"] in PARSE_OR_INVALID
    assert server.alive()


def test_message_that_is_not_json_rpc_2_gets_invalid_request(server):
    server.send_bytes(frame({"id": 9101, "method": "llamacode/stats"}))
    server.send_bytes(frame({"jsonrpc": "1.0", "id": 9102, "method": "llamacode/stats"}))
    server.send_bytes(frame(b"[1, 2, 3]"))
    assert server.response(9101)["error"]["code"] == -32600
    assert server.response(9102)["error"]["code"] == -32600
    assert server.alive()


def test_unknown_request_is_method_not_found_and_unknown_notification_ignored(server):
    answer = server.request("llamacode/noSuchThing", {})
    assert answer["error"]["code"] == -32601
    server.notify("llamacode/noSuchNotification", {"x": 1})
    server.notify("$/someClientExtension", None)
    assert server.alive()


def test_second_initialize_is_refused(server):
    answer = server.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    assert answer["error"]["code"] == -32600
    assert server.stats()["model"]["state"] == "ready"


def test_frames_split_byte_by_byte_and_glued_together_are_read(server):
    first, body = stats_frame(server)
    second, follow = stats_frame(server)
    data = frame(body) + frame(follow)
    for i in range(0, 40):
        server.send_bytes(data[i : i + 1])
    server.send_bytes(data[40:])
    assert "result" in server.response(first)
    assert "result" in server.response(second)


def test_non_ascii_payload_with_byte_exact_length(server):
    uri = (server.root / "ünïcødé 日本.py").as_uri()
    text = "# héllo wörld 🙂 日本語\ndef f():\n    \n"
    server.open(uri, text)
    answer = server.request("textDocument/inlineCompletion", inline_params(uri, 2, 4))
    assert [item["insertText"] for item in answer["result"]["items"]] == [MIDDLE]
    # The server's own frames carry non-ASCII text with the right length, too.
    answer = server.request("llamacode/ñandú🙂", {})
    assert "ñandú🙂" in answer["error"]["message"]
    assert not server.malformed


def test_document_containing_content_length_text_is_just_text(server):
    uri = (server.root / "headers.py").as_uri()
    fake = 'Content-Length: 40\r\n\r\n{"jsonrpc": "2.0", "method": "exit"}'
    text = f"HEADER = {fake!r}\nRAW = '''\n{fake}\n'''\ndef f():\n    \n"
    server.open(uri, text)
    line = text.count("\n") - 1
    answer = server.request("textDocument/inlineCompletion", inline_params(uri, line, 4))
    assert [item["insertText"] for item in answer["result"]["items"]] == [MIDDLE]
    assert server.proc.poll() is None
    assert server.alive()


def test_requests_before_initialize_get_server_not_initialized(tmp_path, middle_gguf):
    server = RawServer(stderr_path=tmp_path / "server.log")
    try:
        uri = (tmp_path / "a.py").as_uri()
        answer = server.request("textDocument/inlineCompletion", inline_params(uri, 0, 0))
        assert answer["error"]["code"] == -32002
        assert server.request("llamacode/stats")["error"]["code"] == -32002
        server.open(uri, "def f():\n    \n")  # a notification before initialize is dropped
        server.initialize(tmp_path, {"modelPath": str(middle_gguf), "trusted": True})
        assert server.wait_for_model()["model"]["state"] == "ready"
        answer = server.request("textDocument/inlineCompletion", inline_params(uri, 1, 4))
        assert answer["result"]["items"] == []  # the early didOpen never happened
    finally:
        assert server.close() == 0
