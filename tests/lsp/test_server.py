"""The language server end to end: a real server process over stdio, driven by pytest-lsp
with the capabilities of VS Code and of Neovim; LSP specification warnings fail the test."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from tests.lsp.conftest import (
    CLIENTS,
    MIDDLE,
    SERVER,
    column,
    encoding,
    plain,
    start,
    stats,
)

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

DOC = "def f():\n    \n"
OWN_COMMANDS = {
    "llamacode.accept",
    "llamacode.acceptPartial",
    "llamacode.dismiss",
    "llamacode.explain",
    "llamacode.fix",
    "llamacode.docstring",
}


@pytest_lsp.fixture(config=SERVER, params=sorted(CLIENTS))
async def client(lsp_client: LanguageClient, request, multiline_gguf: Path, tmp_path: Path):
    options = {"modelPath": str(multiline_gguf), "trusted": True, "temperature": 0}
    await start(lsp_client, request.param, options, tmp_path)
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, uri: str, text: str, language: str = "python") -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        )
    )


def insert(client: LanguageClient, uri: str, version: int, line: int, char: int, text: str):
    at = types.Position(line=line, character=char)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(at, at), text=text)
            ],
        )
    )


def inline_params(uri: str, line: int, char: int, invoked: bool = False):
    kind = (
        types.InlineCompletionTriggerKind.Invoked
        if invoked
        else types.InlineCompletionTriggerKind.Automatic
    )
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=char),
        context=types.InlineCompletionContext(trigger_kind=kind),
    )


def send_inline(client: LanguageClient, params: types.InlineCompletionParams) -> asyncio.Future:
    """Send an inline completion request now (not when awaited) and return its future."""
    return asyncio.wrap_future(
        client.protocol.send_request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params)
    )


async def inline(client: LanguageClient, uri: str, line: int, char: int, invoked: bool = False):
    return await client.text_document_inline_completion_async(
        inline_params(uri, line, char, invoked)
    )


def configure(client: LanguageClient, **settings) -> None:
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"llamacode": settings})
    )


async def test_initialize_advertises_completion_features(client: LanguageClient):
    caps = client.init_result.capabilities
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert set(caps.execute_command_provider.commands) >= OWN_COMMANDS
    assert caps.text_document_sync.change == types.TextDocumentSyncKind.Incremental


async def test_inline_completion_fills_the_middle(client: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, DOC)
    result = await inline(client, uri, 1, 4)
    assert [item.insert_text for item in result.items] == [MIDDLE]
    item = result.items[0]
    assert item.range == types.Range(types.Position(1, 4), types.Position(1, 4))
    assert item.command.command == "llamacode.accept"
    assert isinstance(item.command.arguments[0], str)


async def test_completion_fallback_gives_one_item(client: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, DOC)
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=1, character=4),
        )
    )
    assert len(result.items) == 1
    assert result.items[0].text_edit.new_text == MIDDLE
    assert result.items[0].label == MIDDLE


async def test_multi_line_only_without_code_right_of_the_cursor(
    client: LanguageClient, tmp_path: Path
):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, "def f():\n\ndef g(): pass\n")
    multi = await inline(client, uri, 0, 8)
    assert [item.insert_text for item in multi.items] == ["\n    x = y"]
    single = await inline(client, uri, 2, 8)  # " pass" is right of the cursor
    assert not single.items
    assert (await stats(client))["model"]["runs"] == 2


async def test_typing_the_suggestion_is_answered_from_the_cache(
    client: LanguageClient, tmp_path: Path
):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, DOC)
    first = await inline(client, uri, 1, 4)
    assert first.items[0].insert_text == MIDDLE
    insert(client, uri, 2, 1, 4, "x = ")
    second = await inline(client, uri, 1, 8)
    assert [item.insert_text for item in second.items] == ["y"]
    assert second.items[0].command.arguments == first.items[0].command.arguments
    answer = await stats(client)
    assert answer["cache"]["hits"] == 1
    assert answer["model"]["runs"] == 1


async def test_non_ascii_crlf_document_completes_at_the_cursor(
    client: LanguageClient, tmp_path: Path
):
    uri = (tmp_path / "u.py").as_uri()
    line = '    s = "🙂é"; tot'
    open_doc(client, uri, f"# héllo 🙂 wörld\r\ndef f():\r\n{line}\r\n    return s\r\n")
    enc = encoding(client)
    end = column(line, len(line), enc)
    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=2, character=end),
        )
    )
    edit = result.items[0].text_edit
    assert edit.range.start == types.Position(2, column(line, len(line) - 3, enc))
    assert edit.range.end == types.Position(2, end)
    assert edit.new_text == "tot\r\n    x = y"
    # Enter and two characters typed after the non-ASCII text: answered from the cache,
    # which only happens if the edit and the request land exactly at the cursor
    insert(client, uri, 2, 2, end, "\r\n    x")
    after = await inline(client, uri, 3, 5)
    assert [item.insert_text for item in after.items] == [" = y"]
    answer = await stats(client)
    assert answer["model"]["runs"] == 1
    assert answer["cache"]["hits"] == 1


async def test_cancelled_request_never_reaches_the_model(client: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, DOC)
    configure(client, debounceMs=2000)
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 4), msg_id="cancel-me"
    )
    client.cancel_request(types.CancelParams(id="cancel-me"))
    with pytest.raises(JsonRpcException):
        await asyncio.wrap_future(future)
    answer = await stats(client)
    assert answer["client_cancelled"] == 1
    assert answer["engine"]["requests"] == 0
    configure(client, debounceMs=0)
    assert (await inline(client, uri, 1, 4)).items[0].insert_text == MIDDLE


async def test_burst_of_edits_runs_the_model_once(client: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, DOC)
    configure(client, debounceMs=400)
    rss = []
    version = 1
    col = 4
    for _burst in range(2):
        before = await stats(client)
        pending = []
        for _ in range(20):
            version += 1
            insert(client, uri, version, 1, col, "z")
            col += 1
            pending.append(send_inline(client, inline_params(uri, 1, col)))
        results = await asyncio.gather(*pending)
        assert len(results) == 20
        assert all(r is not None for r in results)
        assert all(not r.items for r in results[:-1])
        assert results[-1].items
        after = await stats(client)
        assert after["model"]["runs"] - before["model"]["runs"] == 1
        assert after["engine"]["requests"] - before["engine"]["requests"] == 1
        assert after["superseded"] - before["superseded"] == 19
        rss.append(after["process"]["rss_bytes"])
    assert rss[1] - rss[0] < 16 * 2**20


async def test_edit_cancels_the_running_request(client: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, DOC)
    configure(client, debounceMs=400)
    pending = send_inline(client, inline_params(uri, 1, 4))
    await asyncio.sleep(0.05)
    insert(client, uri, 2, 1, 4, "q")
    result = await pending
    assert not result.items
    answer = await stats(client)
    assert answer["superseded"] == 1
    assert answer["engine"]["requests"] == 0


async def test_chat_streams_progress_and_answers(client: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, "def add(a, b):\n    return a + b\n")
    answer = await client.protocol.send_request_async(
        "llamacode/chat",
        {
            "messages": [{"role": "user", "content": "What does this do?"}],
            "textDocument": {"uri": uri},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 16}},
            "maxTokens": 16,
        },
    )
    assert answer.text
    assert answer.stopReason in ("eot", "eos", "max_tokens")
    kinds = [type(v).__name__ for reports in client.progress_reports.values() for v in reports]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"
    assert "WorkDoneProgressReport" in kinds


async def test_chat_rejects_malformed_messages(client: LanguageClient):
    with pytest.raises(JsonRpcException, match="role"):
        await client.protocol.send_request_async(
            "llamacode/chat", {"messages": [{"role": "wizard", "content": "hi"}]}
        )
    assert (await stats(client))["model"]["state"] == "ready"


async def test_docstring_command_returns_an_edit_under_the_signature(
    client: LanguageClient, tmp_path: Path
):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, "def add(a, b):\n    return a + b\n")
    selection = {
        "textDocument": {"uri": uri},
        "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 16}},
    }
    result = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="llamacode.docstring", arguments=[selection])
    )
    edit = plain(result)["edits"][0]
    assert edit["range"]["start"] == edit["range"]["end"] == {"line": 1, "character": 0}
    assert edit["newText"].startswith('    """')
    assert plain(result)["edit"]["changes"][uri] == [edit]
    fix = plain(
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="llamacode.fix", arguments=[selection])
        )
    )
    assert fix["edits"][0]["range"] == selection["range"]


@pytest.mark.parametrize(
    ("command", "arguments"),
    [
        ("llamacode.explain", []),
        ("llamacode.explain", [{"textDocument": {"uri": 5}}]),
        ("llamacode.fix", [{"textDocument": {"uri": "file:///not-open.py"}, "range": None}]),
        ("llamacode.accept", [1, 2]),
        ("llamacode.acceptPartial", ["s1", -3]),
        ("rm -rf /", []),
    ],
)
async def test_commands_reject_bad_arguments(client: LanguageClient, command, arguments):
    with pytest.raises(JsonRpcException):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command=command, arguments=arguments)
        )
    assert (await stats(client))["model"]["state"] == "ready"


async def test_acceptance_and_dismissal_are_counted(client: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, "def f():\n    \n\ndef g():\n    \n")
    first = await inline(client, uri, 1, 4)
    suggestion_id = first.items[0].command.arguments[0]
    accepted = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="llamacode.accept", arguments=[suggestion_id])
    )
    again = await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="llamacode.accept", arguments=[suggestion_id])
    )
    assert (accepted, again) == (True, False)
    await inline(client, uri, 4, 4)  # shown, never accepted ...
    await inline(client, uri, 1, 0)  # ... and replaced by another suggestion
    acceptance = (await stats(client))["acceptance"]
    assert acceptance["shown"] == 3
    assert acceptance["accepted"] == 1
    assert acceptance["dismissed"] == 1
    assert acceptance["rate"] == 0.5


async def test_disabled_language_gets_no_completion(client: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "notes.md").as_uri()
    open_doc(client, uri, "# notes\n\n", language="markdown")
    configure(client, languages={"markdown": False})
    assert not (await inline(client, uri, 1, 0)).items
    assert (await stats(client))["engine"]["requests"] == 0


async def test_pulled_configuration_applies(client: LanguageClient, tmp_path: Path):
    client.set_configuration({"maxTokens": 7, "linePolicy": "single"}, section="llamacode")
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    for _ in range(200):
        settings = (await stats(client))["settings"]
        if settings["max_tokens"] == 7:
            break
        await asyncio.sleep(0.01)
    assert (settings["max_tokens"], settings["line_policy"]) == (7, "single")


async def test_other_open_files_join_the_prompt(client: LanguageClient, tmp_path: Path):
    helper = "def helper(value):\n    return value * 2\n\n\nLIMIT = 10\n"
    open_doc(client, (tmp_path / "helpers.py").as_uri(), helper)
    open_doc(client, (tmp_path / "b.py").as_uri(), DOC)
    await inline(client, (tmp_path / "b.py").as_uri(), 1, 4)
    with_extra = (await stats(client))["model"]["prompt_tokens"]
    configure(client, extraContext=False)
    open_doc(client, (tmp_path / "c.py").as_uri(), DOC)
    await inline(client, (tmp_path / "c.py").as_uri(), 1, 4)
    without_extra = (await stats(client))["model"]["prompt_tokens"] - with_extra
    assert with_extra - without_extra >= 10


async def test_full_document_change_replaces_the_text(client: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "a.py").as_uri()
    open_doc(client, uri, "x = 1\n")
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=DOC)],
        )
    )
    result = await inline(client, uri, 1, 4)
    assert [item.insert_text for item in result.items] == [MIDDLE]


async def test_the_cli_shows_what_the_server_shows(
    client: LanguageClient, tmp_path: Path, multiline_gguf: Path
):
    source = tmp_path / "same.py"
    source.write_text("def f():\n\ndef g():\n    return 1\n")
    uri = source.as_uri()
    open_doc(client, uri, source.read_text())
    served = await inline(client, uri, 0, 8)
    argv = ["complete", f"{source}:1:9", "--model", str(multiline_gguf), "--threads", "1"]
    out = subprocess.run(
        [sys.executable, "-m", "llamacode.runtime", *argv],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert [item.insert_text for item in served.items] == [out.stdout.removesuffix("\n")]


async def test_warming_at_an_idle_cursor_leaves_one_token_for_the_keystroke(
    client: LanguageClient, tmp_path: Path
):
    uri = (tmp_path / "warm.py").as_uri()
    open_doc(client, uri, "import os\n\n\ndef f():\n    \n")
    position = {"line": 4, "character": 4}
    client.protocol.notify("llamacode/warm", {"textDocument": {"uri": uri}, "position": position})
    for _ in range(500):
        answer = await stats(client)
        if answer["warmed"]:
            break
        await asyncio.sleep(0.01)
    assert answer["warmed"] == 1
    before = answer["model"]["evaluated_tokens"]
    result = await inline(client, uri, 4, 4)
    assert [item.insert_text for item in result.items] == [MIDDLE]
    assert (await stats(client))["model"]["evaluated_tokens"] - before <= 1
