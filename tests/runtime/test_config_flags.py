"""The model and generation flags are derived from EngineConfig and GenerationConfig."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import typing
from dataclasses import dataclass, field

import pytest

from llamacode.runtime.cli import (
    ENGINE_FLAGS,
    GENERATION_FLAGS,
    build_parser,
    engine_config,
    generation_config,
)
from llamacode.runtime.config import EngineConfig, GenerationConfig
from llamacode.runtime.dataclass_flags import (
    Option,
    add_flags,
    field_option,
    field_type,
    option,
    values_from_args,
)
from llamacode.runtime.errors import ConfigError


def _flagged(cls: type, table: dict[str, Option]) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if field_option(f, table).flags != ()]


def _words(cls: type, table: dict[str, Option], f: dataclasses.Field) -> tuple[list[str], object]:
    """Command-line words that set field ``f`` to something other than its default."""
    opt = field_option(f, table)
    flag = (opt.flags or ("--" + f.name.replace("_", "-"),))[-1]
    default = getattr(cls(), f.name)
    kind, _ = field_type(cls, f.name)
    if kind is bool:
        return ([flag] if not default else ["--no-" + flag.removeprefix("--")]), not default
    if opt.choices:
        value = next(c for c in opt.choices if c != default)
        return [flag, value], value
    if kind in (int, float):
        value = kind((default or 0) + 3)
        return [flag, str(value)], value
    if typing.get_origin(kind) is tuple:
        return [flag, "a", flag, "b"], ("a", "b")
    if typing.get_origin(kind) is dict:
        return [flag, "llama.rope.freq_base=float:1e6"], {"llama.rope.freq_base": 1e6}
    if kind is str:
        return [flag, "x.gguf"], "x.gguf"
    raise AssertionError(f"no test value for {cls.__name__}.{f.name}: {kind}")


def test_no_flags_give_the_dataclass_defaults():
    args = build_parser().parse_args(["chat"])
    assert engine_config(args) == EngineConfig()
    assert generation_config(args) == GenerationConfig(max_tokens=512)  # chat's own default


@pytest.mark.parametrize(
    "f", _flagged(EngineConfig, ENGINE_FLAGS), ids=lambda f: f"EngineConfig.{f.name}"
)
def test_each_engine_field_has_a_working_flag(f):
    words, expected = _words(EngineConfig, ENGINE_FLAGS, f)
    config = engine_config(build_parser().parse_args(["chat", *words]))
    assert getattr(config, f.name) == expected
    assert dataclasses.replace(config, **{f.name: getattr(EngineConfig(), f.name)}) == (
        EngineConfig()
    )


@pytest.mark.parametrize(
    "f", _flagged(GenerationConfig, GENERATION_FLAGS), ids=lambda f: f"GenerationConfig.{f.name}"
)
def test_each_generation_field_has_a_working_flag(f):
    words, expected = _words(GenerationConfig, GENERATION_FLAGS, f)
    config = generation_config(build_parser().parse_args(["chat", *words]))
    assert getattr(config, f.name) == expected


def test_a_bad_override_is_a_config_error_naming_the_flag():
    args = build_parser().parse_args(["chat", "--override-kv", "key=int:x"])
    with pytest.raises(ConfigError, match="--override-kv"):
        engine_config(args)


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Example:
    """Stands for a settings dataclass that gains fields of every supported kind."""

    count: int = field(default=2, metadata=option(minimum=1))
    ratio: float | None = None
    name: str = "x"
    fast: bool = False
    colour: Colour = Colour.RED
    tags: tuple[str, ...] = ()
    hidden: int = field(default=0, metadata=option(flags=()))


def test_a_new_field_of_any_supported_kind_gets_a_flag():
    parser = argparse.ArgumentParser()
    add_flags(parser, Example)
    words = ["--count", "5", "--ratio", "0.5", "--name", "y", "--fast", "--colour", "blue"]
    args = parser.parse_args([*words, "--tags", "a", "--tags", "b"])
    assert Example(**values_from_args(Example, args)) == Example(
        5, 0.5, "y", True, Colour.BLUE, ("a", "b")
    )
    assert Example(**values_from_args(Example, parser.parse_args([]))) == Example()
    with pytest.raises(SystemExit):
        parser.parse_args(["--hidden", "1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--count", "0"])


def test_a_field_with_no_command_line_form_is_named_at_once():
    @dataclass
    class Nested:
        inner: Example = field(default_factory=Example)

    with pytest.raises(TypeError, match=r"Nested\.inner"):
        add_flags(argparse.ArgumentParser(), Nested)
