"""Command-line flags derived from a settings dataclass, so each setting is written once.

Every field becomes a flag named after it (``max_tokens`` -> ``--max-tokens``) with the
field's type and default, so a field added to the dataclass gets its flag with no more
code. What a type and a default cannot say (help, a minimum, choices, another spelling,
or no flag at all) is an :class:`Option`, kept in the field's metadata (:func:`option`)
or, for a dataclass that leaves presentation to its callers, in a table passed in.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass
from typing import Any

_METADATA_KEY = "option"


@dataclass(frozen=True)
class Option:
    """What a settings field needs beyond its type and default."""

    help: str | None = None
    minimum: int | float | None = None
    choices: tuple[Any, ...] | None = None
    # None: "--field-name"; () keeps the field off the command line.
    flags: tuple[str, ...] | None = None
    metavar: str | None = None
    # For list, tuple and dict fields: the values of the repeated flag -> the field's value.
    from_cli: Callable[[list[Any]], Any] | None = None


def option(**described: Any) -> dict[str, Option]:
    """Field metadata that carries an :class:`Option`:
    ``field(default=48, metadata=option(minimum=1, help=...))``."""
    return {_METADATA_KEY: Option(**described)}


def field_option(field: Field[Any], table: Mapping[str, Option] | None = None) -> Option:
    """The field's :class:`Option`: from ``table`` first, then its metadata, else the plain one."""
    if table and field.name in table:
        return table[field.name]
    return field.metadata.get(_METADATA_KEY, Option())


def field_type(cls: type, name: str) -> tuple[Any, bool]:
    """(the field's type without ``None``, whether ``None`` is allowed)."""
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def field_default(field: Field[Any]) -> Any:
    if field.default is not MISSING:
        return field.default
    if field.default_factory is not MISSING:
        return field.default_factory()
    return None


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    table: Mapping[str, Option] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Add a flag for every field of ``cls`` that has one; ``defaults`` overrides the field's."""
    for field in dataclasses.fields(cls):
        opt = field_option(field, table)
        names = opt.flags if opt.flags is not None else ("--" + field.name.replace("_", "-"),)
        if not names:
            continue
        default = (defaults or {}).get(field.name, field_default(field))
        form = _argparse_form(cls, field, opt, default)
        if "type" in form and "choices" not in form:
            form["metavar"] = opt.metavar or names[-1].lstrip("-").replace("-", "_").upper()
        parser.add_argument(*names, dest=field.name, help=opt.help, **form)


def _argparse_form(cls: type, field: Field[Any], opt: Option, default: Any) -> dict[str, Any]:
    kind, _ = field_type(cls, field.name)
    origin = typing.get_origin(kind) or kind
    form: dict[str, Any] = {"default": default}
    if kind is bool:
        form["action"] = argparse.BooleanOptionalAction
    elif isinstance(kind, type) and issubclass(kind, enum.Enum):
        form["choices"] = [m.value for m in kind]
        form["default"] = default.value if isinstance(default, enum.Enum) else default
    elif kind in (int, float, str):
        form["type"] = _bounded(kind, opt.minimum)
        if opt.choices is not None:
            form["choices"] = opt.choices
    elif origin in (list, tuple, dict) and (origin is not dict or opt.from_cli):
        item = typing.get_args(kind)[0] if origin is not dict else str
        form.update(action="append", type=item, default=None)
    else:
        raise TypeError(
            f"{cls.__name__}.{field.name} ({kind}) has no command-line form: give it an "
            "Option with from_cli, or flags=() to keep it off the command line"
        )
    return form


def _bounded(kind: type, minimum: int | float | None) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if minimum is not None and value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def values_from_args(
    cls: type, args: argparse.Namespace, table: Mapping[str, Option] | None = None
) -> dict[str, Any]:
    """The field values the parsed flags give (fields without a flag are left out)."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        if not hasattr(args, field.name) or field_option(field, table).flags == ():
            continue
        value = getattr(args, field.name)
        kind, _ = field_type(cls, field.name)
        origin = typing.get_origin(kind) or kind
        opt = field_option(field, table)
        if origin in (list, tuple, dict):
            if value is None:
                value = field_default(field)
            elif opt.from_cli is not None:
                value = opt.from_cli(value)
            else:
                value = origin(value)
        elif isinstance(kind, type) and issubclass(kind, enum.Enum) and value is not None:
            value = kind(value)
        values[field.name] = value
    return values
