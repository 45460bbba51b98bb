"""Hostile input to the language server: frames that are not JSON get a Parse error, a frame
over the size cap is reported instead of vanishing, lone UTF-16 surrogates are just text, the
workspace boundary follows real paths, and a chat template that never finishes costs its own
request, not the model thread."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llamacode.lsp.transport import MAX_BODY_BYTES
from llamacode.lsp.workspace import in_workspace
from llamacode.runtime.template import MAX_RENDER_S
from tests.fixtures.gguf_models import CODELLAMA_FIM, TinyVocab, chain, write_tiny_gguf
from tests.reliability.conftest import MIDDLE, started
from tests.reliability.rawlsp import RawServer, frame, inline_params

PARSE_ERROR = -32700
INVALID_PARAMS = -32602
SPIN_TEMPLATE = "{% set s = 'ab' * 50000 %}{% for c in s %}{% for d in s %}{% endfor %}{% endfor %}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, middle_gguf: Path):
    root = tmp_path_factory.mktemp("ws")
    yield from started(middle_gguf, root, root.parent / "server.log", maxTokens=16)


def parse_errors(server: RawServer) -> list[dict]:
    return [
        m
        for m in server.received
        if m.get("id", "absent") is None and m.get("error", {}).get("code") == PARSE_ERROR
    ]


def chat(uri: str | None, question: str) -> dict:
    params: dict = {"messages": [{"role": "user", "content": question}], "maxTokens": 8}
    if uri is not None:
        params["textDocument"] = {"uri": uri}
    return params


# Frames --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc": "2.0", "id": 41, "method": "llamacode/stats", "params": "caf\xe9"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"jsonrpc": "2.0", "id": 42, "method": ',
    ],
    ids=["invalid UTF-8 in a string", "100,000 levels of nesting", "cut short"],
)
def test_frame_that_is_not_json_gets_parse_error_with_id_null(server: RawServer, body: bytes):
    before = len(parse_errors(server))
    server.send_bytes(frame(body))
    assert server.alive()  # answered in order: the parse error came first
    errors = parse_errors(server)
    assert len(errors) == before + 1, server.received[-3:]
    assert errors[-1]["error"]["message"].startswith("Parse error")
    assert not any(m.get("id") in (41, 42) for m in server.received)


@pytest.mark.slow
def test_frame_over_the_size_cap_is_reported_not_dropped_silently(server: RawServer):
    uri = (server.root / "huge.py").as_uri()
    text = "x = 1\n" * (MAX_BODY_BYTES // 6 + 1)
    server.open(uri, text)
    shown = server.wait_for(
        lambda m: m.get("method") == "window/showMessage" and uri in m["params"]["message"],
        timeout=120,
    )
    assert "textDocument/didOpen" in shown["params"]["message"]
    assert "no completions" in shown["params"]["message"]
    # A request that large gets an error for its id, not silence.
    msg_id = server.start_request("llamacode/chat", chat(None, "y" * MAX_BODY_BYTES))
    answer = server.response(msg_id, timeout=120)
    assert answer["error"]["code"] == -32600
    assert "limit" in answer["error"]["message"]
    assert server.alive()


# Text ----------------------------------------------------------------------------------


def test_lone_surrogates_in_a_document_are_completed_and_chatted_about(server: RawServer):
    uri = (server.root / "surrogates.py").as_uri()
    server.open(uri, "# caf\ud800 \udfff\ndef f():\n    \n")
    answer = server.request("textDocument/inlineCompletion", inline_params(uri, 2, 4))
    assert [item["insertText"] for item in answer["result"]["items"]] == [MIDDLE]
    answer = server.request("llamacode/chat", chat(uri, "what is \udc80 here?"), timeout=60)
    assert "result" in answer, answer
    assert answer["result"]["stopReason"] != "not-ready"


# Workspace boundary --------------------------------------------------------------------


def test_workspace_check_resolves_symlinks_and_ignores_scheme_case(tmp_path: Path):
    root, outside = tmp_path / "ws", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "inner").symlink_to(root / "escape" / ".." / "ws", target_is_directory=True)
    roots = [root.as_uri()]
    assert in_workspace((root / "a.py").as_uri(), roots)
    assert in_workspace((root / "inner" / "a.py").as_uri(), roots)
    assert in_workspace("untitled:Untitled-1", roots)
    for uri in [
        "FILE:///etc/passwd",
        "File:///etc/passwd",
        (root / "escape" / "secret.py").as_uri(),
        (root / "escape").as_uri(),
        "file:etc/passwd",
    ]:
        assert not in_workspace(uri, roots), uri
    # A root that is itself a link is compared by where it leads.
    (tmp_path / "ws-link").symlink_to(root, target_is_directory=True)
    assert in_workspace((root / "a.py").as_uri(), [(tmp_path / "ws-link").as_uri()])


def test_server_refuses_upper_case_schemes_and_symlinks_out_of_the_root(
    server: RawServer, tmp_path
):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = server.root / "link-out"
    if not link.is_symlink():
        link.symlink_to(outside, target_is_directory=True)
    text = "def f():\n    \n"
    for uri in ["FILE:///etc/passwd", (link / "secret.py").as_uri()]:
        server.open(uri, text)
        answer = server.request("textDocument/inlineCompletion", inline_params(uri, 1, 4))
        assert answer["result"]["items"] == [], uri
        answer = server.request("llamacode/chat", chat(uri, "?"))
        assert answer["error"]["code"] == INVALID_PARAMS, uri
        assert "outside the workspace" in answer["error"]["message"]


# Templates -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spinning_template_gguf(tmp_path_factory: pytest.TempPathFactory, cl_vocab: TinyVocab) -> Path:
    """The FIM model of the reliability tests, with a chat template that loops forever."""
    v = cl_vocab
    tokens = ["<0x0A>", "▁▁▁▁", "x", "▁=", "▁y"]
    script = chain([*(v.id(t) for t in tokens), CODELLAMA_FIM["eot"]])
    path = tmp_path_factory.mktemp("gguf") / "tiny-spin.gguf"
    return write_tiny_gguf(
        path, v, script=script, default_next=v.id("<0x0A>"), chat_template=SPIN_TEMPLATE
    )


@pytest.mark.slow
def test_chat_template_that_never_finishes_frees_the_model_thread(
    tmp_path: Path, spinning_template_gguf: Path
):
    root = tmp_path / "ws"
    root.mkdir()
    log = tmp_path / "server.log"
    gen = started(spinning_template_gguf, root, log, maxTokens=16)
    server = next(gen)
    try:
        uri = (root / "a.py").as_uri()
        server.open(uri, "def f():\n    \n")
        started_at = time.monotonic()
        chat_id = server.start_request("llamacode/chat", chat(None, "hi"))
        completion = server.start_request("textDocument/inlineCompletion", inline_params(uri, 1, 4))
        answer = server.response(chat_id, timeout=60)
        assert "chat template" in answer["error"]["message"], answer
        items = server.response(completion, timeout=60)["result"]["items"]
        assert [item["insertText"] for item in items] == [MIDDLE]
        # The completion waited for the template's budget, no longer (slack for a busy CPU).
        assert time.monotonic() - started_at < MAX_RENDER_S + 20
        assert server.close(timeout=30) == 0
    finally:
        gen.close()
    assert "Fatal Python error" not in log.read_text(errors="replace")
