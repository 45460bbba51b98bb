"""The server applies a LoRA adapter (adapterPath) to the models it fits, says which in
llamacode/stats, reports an adapter it cannot use and keeps answering without it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import LanguageClient

from llamacode.convert.lora_gguf import write_lora_gguf
from llamacode.lsp.settings import ServerSettings
from llamacode.runtime.catalog import QWEN_05B, QWEN_15B
from llamacode.runtime.gguf_file import read_header
from llamacode.runtime.models import catalog_path
from tests.lsp.conftest import MIDDLE, SERVER, start, stats

pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

DOC = "def f():\n    \n"


def write_adapter(model: Path, path: Path, architecture: str, layers: int | None = None) -> Path:
    """A small random adapter on the attention projections of ``model`` (the first
    ``layers`` blocks, or all): too weak to change a scripted model's answer."""
    rng = np.random.default_rng(0)
    pairs = {}
    for tensor in read_header(model).tensors:
        block = tensor.name.split(".")[1] if tensor.name.startswith("blk.") else None
        if block is None or ".attn_" not in tensor.name or len(tensor.shape) != 2:
            continue
        if layers is not None and int(block) >= layers:
            continue
        n_in, n_out = tensor.shape
        pairs[tensor.name] = (
            (rng.standard_normal((4, n_in)) * 0.01).astype(np.float32),
            (rng.standard_normal((n_out, 4)) * 0.01).astype(np.float32),
        )
    write_lora_gguf(path, architecture=architecture, alpha=8.0, pairs=pairs)
    return path


async def loaded(client: LanguageClient, timeout: float = 300.0) -> dict[str, Any]:
    """Stats once both roles' models have loaded (or given up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await stats(client)
        model = answer["model"]
        if model["state"] == "failed" or (model["state"] == "ready" and not model["loading_more"]):
            return answer
        assert loop.time() < deadline, answer
        await asyncio.sleep(0.05)


async def shown_middle(client: LanguageClient, tmp_path: Path) -> list[str]:
    uri = (tmp_path / "a.py").as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="python", version=1, text=DOC)
        )
    )
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=1, character=4),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
    )
    return [item.insert_text for item in result.items]


@pytest_lsp.fixture(config=SERVER)
async def bare(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def test_adapter_from_initialization_options_is_applied(
    bare: LanguageClient, tmp_path: Path, multiline_gguf: Path
):
    adapter = write_adapter(multiline_gguf, tmp_path / "lora.gguf", "llama")
    options = {"modelPath": str(multiline_gguf), "adapterPath": str(adapter), "trusted": True}
    await start(bare, "neovim", options, tmp_path)
    model = (await loaded(bare))["model"]
    assert model["roles"] == {"typing": str(multiline_gguf), "asked": str(multiline_gguf)}
    assert model["adapters"] == {"typing": str(adapter), "asked": str(adapter)}
    assert model["adapter_problem"] is None
    assert await shown_middle(bare, tmp_path) == [MIDDLE]


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        ("a model", "is a model, not a LoRA adapter"),
        ("another architecture", "fits none of the models"),
    ],
)
async def test_an_adapter_the_server_cannot_use_is_reported_and_it_answers_without(
    bare: LanguageClient, tmp_path: Path, multiline_gguf: Path, case: str, problem: str
):
    if case == "a model":
        adapter = multiline_gguf
    else:
        adapter = write_adapter(multiline_gguf, tmp_path / "lora.gguf", "qwen2")
    options = {"modelPath": str(multiline_gguf), "adapterPath": str(adapter), "trusted": True}
    await start(bare, "vscode", options, tmp_path)
    model = (await loaded(bare))["model"]
    assert model["state"] == "ready"
    assert model["adapters"] == {}
    assert problem in model["adapter_problem"]
    errors = [m.message for m in bare.messages if m.type == types.MessageType.Error]
    assert any(problem in message for message in errors), errors
    assert await shown_middle(bare, tmp_path) == [MIDDLE]


async def test_a_new_adapter_path_from_the_configuration_reloads(
    bare: LanguageClient, tmp_path: Path, multiline_gguf: Path
):
    adapter = write_adapter(multiline_gguf, tmp_path / "lora.gguf", "llama")
    await start(bare, "neovim", {"modelPath": str(multiline_gguf), "trusted": True}, tmp_path)
    assert (await loaded(bare))["model"]["adapters"] == {}
    bare.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"llamacode": {"adapterPath": str(adapter)}})
    )
    for _ in range(600):
        model = (await stats(bare))["model"]
        if model["adapters"]:
            break
        await asyncio.sleep(0.05)
    assert model["adapters"]["typing"] == str(adapter)


def test_an_adapter_path_from_an_untrusted_workspace_is_ignored():
    untrusted = ServerSettings().updated({"adapterPath": "/tmp/evil.gguf"}, source="config")
    assert untrusted.adapter_path is None
    trusted = ServerSettings(trusted=True).updated({"adapterPath": "/m/a.gguf"}, source="config")
    assert trusted.adapter_path == "/m/a.gguf"


@pytest.mark.slow
async def test_an_adapter_for_the_typing_model_leaves_the_asked_model_without_it(
    bare: LanguageClient, tmp_path: Path
):
    typing, asked = catalog_path(QWEN_05B), catalog_path(QWEN_15B)
    if not (typing.is_file() and asked.is_file()):
        pytest.fail("run `make run` (or `llamacode models install`) for the default models")
    adapter = write_adapter(typing, tmp_path / "qwen-lora.gguf", "qwen2", layers=2)
    options = {"adapterPath": str(adapter), "trusted": True, "timeBudgetMs": 60000}
    await start(bare, "vscode", options, tmp_path)
    model = (await loaded(bare))["model"]
    assert model["roles"] == {"typing": str(typing), "asked": str(asked)}
    assert model["adapters"] == {"typing": str(adapter)}
    assert model["adapter_problem"] is None
