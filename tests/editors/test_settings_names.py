"""The editors' settings are the server's settings: named as clients spell them (camelCase),
bounded and defaulted as the server has them. Both sides are read from their sources:
ServerSettings, the VS Code manifest, and the Neovim plugin's own Lua."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import typing
from pathlib import Path

import pytest

from llamacode.lsp.settings import ServerSettings, client_name
from llamacode.runtime.dataclass_flags import field_option, field_type
from tests.editors.harness import PLUGIN, ROOT, find_nvim

SERVER = {client_name(f.name): f for f in dataclasses.fields(ServerSettings)}
MANIFEST = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text(encoding="utf-8"))
VSCODE = {
    name.removeprefix("llamacode."): schema
    for name, schema in MANIFEST["contributes"]["configuration"]["properties"].items()
}
# VS Code settings the server does not take under that name (editors/vscode/src/settings.ts).
VSCODE_OWN = {
    "serverCommand": None,  # how the extension starts the server
    "enable": "languages",  # the extension checks it before asking, and sends it as languages
}
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", dict: "object"}


def test_vscode_names_only_settings_the_server_knows():
    assert set(VSCODE) - set(VSCODE_OWN) <= set(SERVER), "unknown to the server"


@pytest.mark.parametrize("name", sorted(set(VSCODE) - {"serverCommand"}))
def test_vscode_setting_has_the_servers_type_bounds_and_default(name):
    schema = VSCODE[name]
    field = SERVER[VSCODE_OWN.get(name, name)]
    kind, _ = field_type(ServerSettings, field.name)
    assert schema["type"] == JSON_TYPES[typing.get_origin(kind) or kind]
    opt = field_option(field)
    if opt.minimum is not None:  # the editor may be stricter than the server, never looser
        assert schema.get("minimum", float("-inf")) >= opt.minimum
    if opt.choices is not None:
        assert schema["enum"] == list(opt.choices)
    # The manifest's default, as the server reads it, is the server's own default.
    read = ServerSettings(trusted=True).updated({field.name: schema["default"]}, source="init")
    if name in VSCODE_OWN:
        assert getattr(read, field.name) == schema["default"]  # accepted as it is
    else:
        assert getattr(read, field.name) == getattr(ServerSettings(), field.name)


def _neovim_server_settings(options: str) -> dict:
    """What the plugin sends as initializationOptions for the given setup() options."""
    code = (
        f"vim.opt.rtp:prepend({json.dumps(str(PLUGIN))})\n"
        "local config = require('llamacode.config')\n"
        f"local opts = config.resolve({options})\n"
        "io.stdout:write(vim.json.encode(config.server_settings(opts)))\n"
    )
    out = subprocess.run(
        [find_nvim(), "--headless", "--clean", "-l", "-"],
        input=code,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def test_neovim_options_reach_the_server_under_its_names():
    sent = _neovim_server_settings(
        "{ model_path = '/m/a.gguf', max_tokens = 5, time_budget_ms = 900 }"
    )
    assert set(sent) <= set(SERVER)
    got = ServerSettings().updated(sent, source="init")
    assert (got.model_path, got.max_tokens, got.time_budget_ms) == ("/m/a.gguf", 5, 900)


def test_neovim_passes_every_server_setting_through_by_its_name():
    values = {name: getattr(ServerSettings(), f.name) for name, f in SERVER.items()}
    values.update(modelPath="/m/b.gguf", languages={"markdown": False})
    sent = _neovim_server_settings(
        f"{{ server_settings = vim.json.decode({json.dumps(json.dumps(values))}) }}"
    )
    assert {k: v for k, v in sent.items() if k != "trusted"} == {
        k: v for k, v in values.items() if k != "trusted"
    }


def test_neovim_adapter_option_reaches_the_server_as_adapter_path():
    sent = _neovim_server_settings("{ adapter_path = '~/m/lora.gguf' }")
    settings = ServerSettings().updated(sent, source="init")
    assert settings.adapter_path == str(Path.home() / "m" / "lora.gguf")
