"""Faults while serving: the client vanishes or says shutdown/exit in the middle of a
generation, the model file disappears, the model does not load. Nothing hangs, nothing
crashes, and every request the client still waits for is answered."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.conftest import MIDDLE, started
from tests.reliability.rawlsp import RawServer, inline_params

ENDLESS_CHAT = {
    "messages": [{"role": "user", "content": "x"}],
    "maxTokens": 30000,
    "workDoneToken": "chat",
}


def generating(server: RawServer) -> int:
    """Start a chat that would run for minutes; return its id once tokens stream."""
    msg_id = server.start_request("llamacode/chat", ENDLESS_CHAT)
    server.wait_for(
        lambda m: m.get("method") == "$/progress" and m["params"]["value"]["kind"] == "report"
    )
    return msg_id


@pytest.fixture
def endless_server(tmp_path: Path, endless_gguf: Path):
    root = tmp_path / "ws"
    root.mkdir()
    gen = started(endless_gguf, root, tmp_path / "server.log", "--ctx", "32768")
    server = next(gen)
    yield server
    gen.close()


def no_crash(log: Path) -> None:
    text = log.read_text(errors="replace")
    assert "Fatal Python error" not in text
    assert "Traceback" not in text, text[-2000:]


def test_client_disconnect_mid_generation_ends_the_server(endless_server, tmp_path):
    generating(endless_server)
    endless_server.proc.stdin.close()
    assert endless_server.wait(timeout=20) == 0
    no_crash(tmp_path / "server.log")


def test_shutdown_mid_generation_answers_everything_then_exit_ends(endless_server, tmp_path):
    chat = generating(endless_server)
    shutdown = endless_server.request("shutdown", None, timeout=20)
    assert shutdown.get("result", "missing") is None
    answer = endless_server.response(chat, timeout=20)
    assert answer.get("error", {}).get("code") == -32800 or (
        answer["result"]["stopReason"] == "cancelled"
    )
    late = endless_server.request("llamacode/stats", None, timeout=20)
    assert late["error"]["code"] == -32600  # after shutdown: an error, not silence
    endless_server.notify("exit")
    assert endless_server.wait(timeout=20) == 0
    no_crash(tmp_path / "server.log")


def test_exit_without_shutdown_mid_generation_exits_with_code_1(endless_server, tmp_path):
    generating(endless_server)
    endless_server.notify("exit")
    assert endless_server.wait(timeout=20) == 1
    no_crash(tmp_path / "server.log")


def show_messages(server: RawServer, timeout: float = 30.0) -> dict:
    return server.wait_for(
        lambda m: m.get("method") == "window/showMessage" and m["params"]["type"] == 1, timeout
    )


def test_model_file_deleted_while_serving(tmp_path: Path, middle_gguf: Path, copy_model):
    model = copy_model(middle_gguf)
    root = tmp_path / "ws"
    root.mkdir()
    gen = started(model, root, tmp_path / "server.log")
    server = next(gen)
    try:
        uri = (root / "a.py").as_uri()
        server.open(uri, "def f():\n    \n")
        model.unlink()
        # llama.cpp mapped the file: the loaded model keeps working.
        answer = server.request("textDocument/inlineCompletion", inline_params(uri, 1, 4))
        assert [i["insertText"] for i in answer["result"]["items"]] == [MIDDLE]
        # Loading it again (or any missing file) reports an error to the user.
        missing = tmp_path / "models" / "gone.gguf"
        server.notify("workspace/didChangeConfiguration", {"settings": {"modelPath": str(missing)}})
        assert "gone.gguf" in show_messages(server)["params"]["message"]
        stats = server.stats()
        assert stats["model"]["state"] == "failed"
        answer = server.request("textDocument/inlineCompletion", inline_params(uri, 1, 4))
        assert answer["result"]["items"] == []
        server.notify("workspace/didChangeConfiguration", {"settings": {"modelPath": str(model)}})
        assert model.name in show_messages(server)["params"]["message"]
        assert server.alive()
    finally:
        gen.close()


def test_model_that_fails_to_load_shows_an_error_and_the_server_keeps_answering(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + b"\xff" * 64)
    root = tmp_path / "ws"
    root.mkdir()
    server = RawServer(stderr_path=tmp_path / "server.log")
    try:
        server.initialize(root, {"modelPath": str(bad), "trusted": True})
        error = show_messages(server)["params"]["message"]
        assert "broken.gguf" in error
        assert server.wait_for_model()["model"]["state"] == "failed"
        uri = (root / "a.py").as_uri()
        server.open(uri, "def f():\n    \n")
        answer = server.request("textDocument/inlineCompletion", inline_params(uri, 1, 4))
        assert answer["result"]["items"] == []
        answer = server.request("textDocument/completion", inline_params(uri, 1, 4))
        assert answer["result"]["items"] == []
        chat = server.request("llamacode/chat", {"messages": [{"role": "user", "content": "x"}]})
        assert chat["result"]["stopReason"] == "not-ready"
        selection = {
            "textDocument": {"uri": uri},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}},
        }
        command = {"command": "llamacode.explain", "arguments": [selection]}
        answer = server.request("workspace/executeCommand", command)
        assert answer["result"]["stopReason"] == "not-ready"
        assert server.close() == 0
        no_crash(tmp_path / "server.log")
    finally:
        server.kill()
