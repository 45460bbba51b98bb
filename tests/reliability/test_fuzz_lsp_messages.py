"""Fuzzing LSP message parsing: the frame reader in-process (fast, many examples) and
mutated JSON-RPC frames into a real server process (which must keep answering).

``LLAMACODE_FUZZ_EXAMPLES`` sets the number of examples (``make fuzz`` raises it)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from llamacode.lsp.transport import MAX_HEADER_BYTES, FrameParser
from tests.reliability.conftest import started
from tests.reliability.rawlsp import RawServer, frame, inline_params

FUZZ_EXAMPLES = int(os.environ.get("LLAMACODE_FUZZ_EXAMPLES", "150"))
SMALL_BODY_LIMIT = 4096

texts = st.lists(
    st.sampled_from([*'abc {}[]":,\r\n\\é日🙂\x00', "Content-Length: 12\r\n\r\n"]), max_size=30
).map("".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
messages = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "method": texts, "params": json_values},
    optional={"id": st.integers(0, 2**31) | texts},
)
junk = st.binary(max_size=300) | st.sampled_from(
    [
        b"Content-Length: 5\r\n\r\n",
        b"Content-Length: 999999999999\r\n\r\n{",
        b'Content-Length: 3000\r\n\r\n{"id": 1',
        b"Content-Length: x\r\n\r\n",
        b"Content-Type: a\r\n\r\n{}",
        b"\r\n\r\n",
        b"content-length:7\r\n",
    ]
)


def body(message: dict) -> bytes:
    return json.dumps(message, ensure_ascii=False).encode("utf-8")


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def feed_all(parser: FrameParser, chunks: list[bytes]) -> list[bytes]:
    out = []
    for chunk in chunks:
        out += parser.feed(chunk)
        assert len(parser._buf) <= SMALL_BODY_LIMIT + MAX_HEADER_BYTES + len(chunk) + 64
    return out


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.lists(messages, min_size=1, max_size=6), st.lists(st.integers(0, 10**6), max_size=8))
def test_fuzz_valid_frames_in_any_chunking_come_out_unchanged(batch, cuts):
    bodies = [body(m) for m in batch]
    data = b"".join(frame(b) for b in bodies)
    parser = FrameParser(max_body=10**6)
    assert feed_all(parser, chunked(data, cuts)) == bodies
    assert parser.skipped == 0


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(
    st.lists(st.tuples(junk, messages), min_size=1, max_size=5),
    st.lists(st.integers(0, 10**6), max_size=8),
)
def test_fuzz_junk_between_frames_never_loses_the_frames_after_it(pairs, cuts):
    data = b""
    for noise, message in pairs:
        data += noise + frame(body(message))
    parser = FrameParser(max_body=SMALL_BODY_LIMIT)
    got = feed_all(parser, chunked(data, cuts))
    wanted = [body(m) for _, m in pairs if len(body(m)) <= SMALL_BODY_LIMIT]
    it = iter(got)
    assert all(any(b == g for g in it) for b in wanted), "a valid frame was lost"


# The real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, middle_gguf: Path):
    root = tmp_path_factory.mktemp("ws")
    options = {"maxTokens": 4, "chatMaxTokens": 4, "trusted": False}
    yield from started(middle_gguf, root, root.parent / "server.log", **options)


def seed_messages(root: Path) -> list[dict]:
    uri = (root / "a.py").as_uri()
    item = {"uri": uri, "languageId": "python", "version": 1, "text": "def f():\n    \n"}
    return [
        {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": item}},
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "textDocument/inlineCompletion",
            "params": inline_params(uri, 1, 4),
        },
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "workspace/executeCommand",
            "params": {"command": "llamacode.accept", "arguments": ["s1"]},
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "llamacode/chat",
            "params": {"messages": [{"role": "user", "content": "hi"}]},
        },
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {
                "textDocument": {"uri": uri, "version": 2},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": 1, "character": 4},
                            "end": {"line": 1, "character": 4},
                        },
                        "text": "x",
                    }
                ],
            },
        },
        {
            "jsonrpc": "2.0",
            "method": "workspace/didChangeConfiguration",
            "params": {"settings": {"llamacode": {"maxTokens": 4, "debounceMs": 0}}},
        },
        {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}},
    ]


@st.composite
def mutated_frames(draw, seeds: list[dict]) -> bytes:
    message = dict(draw(st.sampled_from(seeds)))
    how = draw(st.sampled_from(["params", "bytes", "length", "splice", "id"]))
    if how == "params":
        message["params"] = draw(json_values)
    elif how == "id":
        message["id"] = draw(json_values)
    raw = json.dumps(message, ensure_ascii=draw(st.booleans())).encode("utf-8")
    if how == "bytes":
        raw = bytearray(raw)
        for _ in range(draw(st.integers(1, 4))):
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        raw = bytes(raw)
    length = len(raw)
    if how == "length":
        length = max(0, length + draw(st.integers(-len(raw), 200)))
    data = frame(raw, length)
    if how == "splice":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(junk) + data[at:]
    return data


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzz_mutated_frames_keep_the_real_server_answering(server: RawServer, data):
    seeds = seed_messages(server.root)
    payload = data.draw(mutated_frames(seeds))
    assume(b'"exit"' not in payload and b'"shutdown"' not in payload)
    server.send_bytes(payload)
    # A mutated length may still be waiting for bytes; a frame that is sure to end it
    # (a header cannot occur inside a body) comes with the probe request.
    assert server.alive(timeout=10), "the server stopped answering"
    assert server.proc.poll() is None
    assert not server.malformed
