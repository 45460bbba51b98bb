"""Fixtures for the language server tests: real server processes over stdio, real models."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from llamacode.lsp.client import serve_argv
from tests.fixtures.gguf_models import CODELLAMA_FIM, TinyVocab, chain, write_tiny_gguf

# One thread: the test machine is shared, and llama.cpp threads that wait for each
# other on a busy machine are slower than one.
SERVER = ClientServerConfig(server_command=serve_argv("--threads", "1"))
CLIENTS = {"vscode": "visual-studio-code", "neovim": "neovim@v0.11.0"}
# The scripted model writes "\n    x = y" then EOT after any prompt whose last token is
# not one of its own; at an indented empty line the server shows "x = y".
MIDDLE = "x = y"


@pytest.fixture(scope="session")
def multiline_gguf(tmp_path_factory: pytest.TempPathFactory, cl_vocab: TinyVocab) -> Path:
    """A Code Llama-like FIM model whose greedy middle is a new indented line."""
    v = cl_vocab
    tokens = ["<0x0A>", "▁▁▁▁", "x", "▁=", "▁y"]
    script = chain([*(v.id(t) for t in tokens), CODELLAMA_FIM["eot"]])
    path = tmp_path_factory.mktemp("gguf") / "tiny-multiline.gguf"
    return write_tiny_gguf(
        path, v, script=script, default_next=v.id("<0x0A>"), name="tiny-multiline"
    )


def capabilities(client: str) -> types.ClientCapabilities:
    """A real editor's capabilities; VS Code's with inline completion (it has it since 1.68)."""
    caps = client_capabilities(CLIENTS[client])
    if client == "vscode":
        caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    return caps


async def start(
    client: LanguageClient, kind: str, options: dict[str, Any], root: Path
) -> types.InitializeResult:
    """initialize + initialized, then wait until the model is loaded."""
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(kind),
            initialization_options=options,
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="ws")],
        )
    )
    client.init_result = result  # type: ignore[attr-defined]
    client.kind = kind  # type: ignore[attr-defined]
    await wait_for_model(client)
    return result


def plain(value: Any) -> Any:
    """Results of custom requests as plain dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: plain(v) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


async def stats(client: LanguageClient) -> dict[str, Any]:
    return plain(await client.protocol.send_request_async("llamacode/stats", None))


async def wait_for_model(client: LanguageClient, timeout: float = 60.0) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await stats(client)
        if answer["model"]["state"] in ("ready", "failed") or loop.time() > deadline:
            return answer
        await asyncio.sleep(0.02)


def column(line: str, chars: int, encoding: str) -> int:
    """The LSP character offset of ``line[:chars]`` in the negotiated position encoding."""
    text = line[:chars]
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-32":
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def encoding(client: LanguageClient) -> str:
    return client.init_result.capabilities.position_encoding or "utf-16"  # type: ignore[attr-defined]
