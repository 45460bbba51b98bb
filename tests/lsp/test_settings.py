"""Settings from the command line, initializationOptions and workspace configuration."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from llamacode.lsp.cli import settings_from_args
from llamacode.lsp.settings import ServerSettings, client_name
from llamacode.runtime.cli import build_parser
from llamacode.runtime.dataclass_flags import field_option, field_type


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


# The settings below are taken from the dataclass itself, so a field added later is
# checked by these tests without a change here.
# Fields with a `serve` flag of their own (the model and adapter paths are the engine's).
FIELDS = [f for f in dataclasses.fields(ServerSettings) if field_option(f).flags != ()]


def _changed(field: dataclasses.Field) -> tuple[list[str], object, object]:
    """Command-line words, client value and resulting field value, all unlike the default."""
    opt = field_option(field)
    flag = (opt.flags or ("--" + field.name.replace("_", "-"),))[-1]
    default = getattr(ServerSettings(), field.name)
    kind, _ = field_type(ServerSettings, field.name)
    if kind is bool:
        words = [flag if not default else "--no-" + flag.removeprefix("--")]
        return words, not default, not default
    if opt.choices:
        value = next(c for c in opt.choices if c != default)
        return [flag, str(value)], value, value
    if kind in (int, float):
        value = kind(default + 2)
        return [flag, str(value)], value, value
    if typing.get_origin(kind) is dict:
        return [flag, "markdown"], {"markdown": False}, {"markdown": False}
    raise AssertionError(f"no test value for {field.name}: {kind}")


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_each_setting_is_a_serve_flag_and_a_client_key(field):
    words, client_value, expected = _changed(field)
    args = build_parser().parse_args(["serve", *words])
    from_cli = settings_from_args(args)
    assert getattr(from_cli, field.name) == expected
    assert dataclasses.replace(from_cli, **{field.name: getattr(ServerSettings(), field.name)}) == (
        ServerSettings()
    )
    key = client_name(field.name)
    from_client = ServerSettings().updated({key: client_value}, source="init")
    assert getattr(from_client, field.name) == expected


def test_serve_without_flags_gives_the_dataclass_defaults():
    assert settings_from_args(build_parser().parse_args(["serve"])) == ServerSettings()
    model = settings_from_args(build_parser().parse_args(["serve", "--model", "m.gguf"]))
    assert model.model_path == "m.gguf"


@pytest.mark.parametrize(
    "field",
    [f for f in FIELDS if field_option(f).minimum is not None],
    ids=lambda f: f.name,
)
def test_values_below_the_minimum_are_refused_by_flag_and_by_client(field, capsys):
    minimum = field_option(field).minimum
    flag = "--" + field.name.replace("_", "-")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", flag, str(minimum - 1)])
    assert f"must be at least {minimum}" in capsys.readouterr().err
    s = ServerSettings().updated({client_name(field.name): minimum - 1}, source="init")
    assert getattr(s, field.name) == getattr(ServerSettings(), field.name)


def test_untouched_server_settings_are_the_suggestion_pipelines_defaults():
    from llamacode.runtime.types import SuggestSettings

    assert ServerSettings().suggestion() == SuggestSettings()


def test_the_pipeline_gets_the_settings_of_the_same_name():
    settings = ServerSettings(max_tokens=7, time_budget_ms=0, asked_time_budget_ms=2500)
    pipeline = settings.suggestion()
    assert (pipeline.max_tokens, pipeline.time_budget_s, pipeline.asked_time_budget_s) == (
        7,
        None,
        2.5,
    )
    assert pipeline.line_policy == settings.line_policy
