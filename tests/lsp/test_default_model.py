"""The server on real models: the default pair (Qwen2.5-Coder 0.5B while typing, 1.5B when
asked), the smallest catalog model (SmolLM2, no FIM tokens), and model loading."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from llamacode.runtime.catalog import QWEN_05B, QWEN_15B
from tests.lsp.conftest import SERVER, plain, start, stats, wait_for_model

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

SOURCE = (
    "import os\n\n\n"
    "def read_file(path):\n"
    "    with open(path) as f:\n"
    "        return f.read()\n\n\n"
    "def write_file(path, text):\n"
    "    "
)


@pytest_lsp.fixture(config=SERVER)
async def smol(lsp_client: LanguageClient, tmp_path: Path, default_model: Path):
    options = {
        "modelPath": str(default_model),
        "trusted": True,
        "temperature": 0,
        "alternatives": 3,
        "alternativeTemperature": 1.0,
    }
    await start(lsp_client, "vscode", options, tmp_path)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=SERVER)
async def defaults(lsp_client: LanguageClient, tmp_path: Path):
    """A server on the default models, as `make run` installs them."""
    # A generous budget: a loaded machine must not turn suggestions into empty answers.
    options = {"temperature": 0, "timeBudgetMs": 60000, "askedTimeBudgetMs": 60000}
    await start(lsp_client, "vscode", options, tmp_path)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=SERVER)
async def bare(lsp_client: LanguageClient):
    """A server process the test initializes itself."""
    yield
    await lsp_client.shutdown_session()


def open_source(client: LanguageClient, uri: str) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text=SOURCE)
        )
    )


async def complete_at_body(
    client: LanguageClient, uri: str, trigger: types.InlineCompletionTriggerKind
) -> types.InlineCompletionList:
    """Ask for an inline completion in the empty body of SOURCE's last function."""
    return await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=9, character=4),
            context=types.InlineCompletionContext(trigger_kind=trigger),
        )
    )


async def test_invoked_completion_offers_alternatives(smol: LanguageClient, tmp_path: Path):
    uri = (tmp_path / "files.py").as_uri()
    open_source(smol, uri)
    result = await complete_at_body(smol, uri, types.InlineCompletionTriggerKind.Invoked)
    texts = [item.insert_text for item in result.items]
    assert len(texts) >= 2
    assert len(set(texts)) == len(texts)
    assert {item.command.arguments[0] for item in result.items} == {
        result.items[0].command.arguments[0]
    }
    answer = await stats(smol)
    assert answer["model"]["runs"] == 3
    assert answer["model"]["reused_tokens"] > 0  # alternatives reuse the prompt's KV cache
    assert answer["engine"]["requests"] == 3


@pytest.mark.slow
async def test_the_default_models_fill_the_middle_while_typing_and_when_asked(
    defaults: LanguageClient, tmp_path: Path
):
    uri = (tmp_path / "files.py").as_uri()
    open_source(defaults, uri)
    typed = await complete_at_body(defaults, uri, types.InlineCompletionTriggerKind.Automatic)
    answer = await stats(defaults)
    assert Path(answer["model"]["roles"]["typing"]).name == QWEN_05B.file_name
    assert typed.items and "open(path" in typed.items[0].insert_text
    for _ in range(3000):
        if not answer["model"]["loading_more"]:
            break
        await asyncio.sleep(0.05)
        answer = await stats(defaults)
    assert Path(answer["model"]["roles"]["asked"]).name == QWEN_15B.file_name
    asked = await complete_at_body(defaults, uri, types.InlineCompletionTriggerKind.Invoked)
    assert asked.items and all(item.insert_text.strip() for item in asked.items)
    assert "open(path" in asked.items[0].insert_text


async def test_chat_answers_with_a_real_model(smol: LanguageClient):
    answer = plain(
        await smol.protocol.send_request_async(
            "llamacode/chat",
            {"messages": [{"role": "user", "content": "Say hello."}], "maxTokens": 12},
        )
    )
    assert answer["text"].strip()
    assert answer["generatedTokens"] >= 1


async def test_server_process_never_imports_torch(smol: LanguageClient):
    answer = await stats(smol)
    assert answer["model"]["state"] == "ready"
    assert answer["process"]["torch_loaded"] is False


def test_importing_the_server_does_not_import_torch():
    code = (
        "import sys, llamacode.lsp.server, llamacode.lsp.cli, llamacode.lsp.demo, "
        "llamacode.runtime.engine, llama_cpp; "
        "print('torch' in sys.modules, 'pygls' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


async def test_load_failure_is_shown_and_the_server_keeps_running(
    bare: LanguageClient, tmp_path: Path
):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF not really")
    await start(bare, "vscode", {"modelPath": str(broken), "trusted": True}, tmp_path)
    for _ in range(500):
        if bare.messages:
            break
        await asyncio.sleep(0.01)
    message = bare.messages[0]
    assert message.type == types.MessageType.Error
    assert "broken.gguf" in message.message
    uri = (tmp_path / "a.py").as_uri()
    open_source(bare, uri)
    result = await complete_at_body(bare, uri, types.InlineCompletionTriggerKind.Automatic)
    assert not result.items
    answer = await stats(bare)
    assert answer["model"]["state"] == "failed"
    assert answer["not_ready"] == 1


async def test_untrusted_workspace_model_path_is_ignored(bare: LanguageClient, tmp_path: Path):
    elsewhere = tmp_path / "from-workspace.gguf"
    elsewhere.write_bytes(b"GGUF not really")
    await start(bare, "neovim", {"modelPath": str(elsewhere)}, tmp_path)
    answer = await wait_for_model(bare)
    assert answer["model"]["state"] == "ready"
    assert Path(answer["model"]["path"]).name != elsewhere.name
    bare.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"llamacode": {"modelPath": str(elsewhere), "trusted": True}}
        )
    )
    answer = await wait_for_model(bare)
    assert answer["model"]["state"] == "ready"
    assert Path(answer["model"]["path"]).name != elsewhere.name


async def test_requests_before_the_model_is_ready_get_an_empty_answer(
    bare: LanguageClient, tmp_path: Path
):
    await bare.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            initialization_options={"temperature": 0},
        )
    )
    uri = (tmp_path / "a.py").as_uri()
    open_source(bare, uri)
    # sent right after initialize: the load has only just started on its own thread
    result = await complete_at_body(bare, uri, types.InlineCompletionTriggerKind.Automatic)
    answer = await stats(bare)
    assert answer["not_ready"] == 1
    assert not result.items
    assert (await wait_for_model(bare))["model"]["state"] == "ready"
