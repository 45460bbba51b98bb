"""Settings from initializationOptions and workspace configuration."""

from __future__ import annotations

from lsp.settings import ServerSettings


def test_client_keys_apply_in_camel_case_and_under_a_section():
    s = ServerSettings().updated(
        {"llamacode": {"maxTokens": 20, "linePolicy": "single", "timeBudgetMs": 300}},
        source="config",
    )
    assert (s.max_tokens, s.line_policy, s.time_budget_ms) == (20, "single", 300)


def test_bad_values_are_ignored_one_by_one():
    s = ServerSettings().updated(
        {"maxTokens": "many", "linePolicy": "sideways", "contextBudget": 512}, source="config"
    )
    assert s.max_tokens == ServerSettings().max_tokens
    assert s.line_policy == "auto"
    assert s.context_budget == 512


def test_model_path_from_workspace_needs_trust():
    untrusted = ServerSettings().updated({"modelPath": "/tmp/evil.gguf"}, source="config")
    assert untrusted.model_path is None
    trusted = ServerSettings().updated({"modelPath": "/tmp/m.gguf", "trusted": True}, source="init")
    assert trusted.model_path == "/tmp/m.gguf"
    assert trusted.updated({"modelPath": "/tmp/n.gguf"}, source="config").model_path == (
        "/tmp/n.gguf"
    )


def test_workspace_configuration_cannot_grant_trust():
    s = ServerSettings().updated({"trusted": True, "modelPath": "/tmp/x.gguf"}, source="config")
    assert not s.trusted and s.model_path is None


def test_trust_flag_allows_workspace_model_path():
    s = ServerSettings(trusted=True).updated({"modelPath": "/m.gguf"}, source="config")
    assert s.model_path == "/m.gguf"


def test_languages_enable_and_disable():
    s = ServerSettings().updated({"languages": {"markdown": False}}, source="config")
    assert not s.language_enabled("markdown")
    assert s.language_enabled("python")
    off = ServerSettings().updated({"languages": {"*": False, "python": True}}, source="config")
    assert off.language_enabled("python") and not off.language_enabled("go")
