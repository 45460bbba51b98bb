"""The VS Code extension's manifest agrees with the language server it starts."""

from __future__ import annotations

import json

from llamacode.lsp.server import create_server
from llamacode.lsp.settings import ServerSettings
from tests.editors.harness import ROOT

MANIFEST = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text(encoding="utf-8"))


def test_extension_commands_do_not_clash_with_server_commands() -> None:
    # vscode-languageclient registers every server command in VS Code; an extension command
    # of the same name makes the client fail to start.
    server_commands = set(create_server().protocol.fm.commands)
    assert server_commands, "the server registers no commands"
    ours = {c["command"] for c in MANIFEST["contributes"]["commands"]}
    assert not ours & server_commands


def test_untrusted_workspaces_cannot_set_the_server_command_or_model() -> None:
    untrusted = MANIFEST["capabilities"]["untrustedWorkspaces"]
    assert untrusted["supported"] == "limited"
    restricted = set(untrusted["restrictedConfigurations"])
    assert {"llamacode.serverCommand", "llamacode.modelPath"} <= restricted


def test_settings_sent_to_the_server_are_ones_it_knows() -> None:
    # settings.ts sends these names; the server ignores unknown ones silently, so check here
    sent = {"maxTokens": 7, "timeBudgetMs": 900, "languages": {"markdown": False}}
    updated = ServerSettings().updated(sent, source="init")
    assert updated.max_tokens == 7
    assert updated.time_budget_ms == 900
    assert not updated.language_enabled("markdown")
