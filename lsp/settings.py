"""Server settings: one dataclass, filled from CLI flags, initializationOptions and
workspace/didChangeConfiguration.

Each field is written once: its type, default and :class:`~runtime.dataclass_flags.Option`
(help, minimum, choices) give both the ``llamacode serve`` flags (:mod:`lsp.cli`) and the
checks on values clients send. Clients send camelCase keys (``maxTokens``), either flat or
under a ``llamacode`` section. Unknown keys are ignored; values of the wrong type are
rejected one by one with a message, so one typo never discards the rest of the settings.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from llamacode.runtime.dataclass_flags import field_option, field_type, option
from llamacode.runtime.types import LINE_POLICIES, SuggestSettings

log = logging.getLogger(__name__)

SECTION = "llamacode"
# The suggestion pipeline's defaults are the server's (runtime/types.py defines them).
_PIPELINE = SuggestSettings()


def _disabled(language_ids: list[str]) -> dict[str, bool]:
    return {language: False for language in language_ids}


@dataclass
class ServerSettings:
    """Everything a user can tune about completion and chat.

    ``model_path`` and ``adapter_path`` from workspace settings are honoured only when
    ``trusted`` is true (a workspace could otherwise make the editor load any file it names).
    """

    # On the command line these are the engine's --model and --adapter.
    model_path: str | None = field(default=None, metadata=option(flags=(), help="GGUF file"))
    adapter_path: str | None = field(
        default=None,
        metadata=option(
            flags=(), help="LoRA adapter GGUF, applied to the models whose tensors it fits"
        ),
    )
    trusted: bool = field(
        default=False,
        metadata=option(flags=("--trust",), help="use model paths from workspace settings"),
    )
    context_budget: int = field(
        default=_PIPELINE.context_budget,
        metadata=option(
            minimum=1, metavar="TOKENS", help="prompt tokens for prefix, suffix and other files"
        ),
    )
    max_tokens: int = field(
        default=_PIPELINE.max_tokens,
        metadata=option(minimum=1, help="most tokens in one suggestion"),
    )
    time_budget_ms: int = field(
        default=round((_PIPELINE.time_budget_s or 0) * 1000),
        metadata=option(minimum=0, help="time budget of one suggestion (0: none)"),
    )
    asked_time_budget_ms: int = field(
        default=round((_PIPELINE.asked_time_budget_s or 0) * 1000),
        metadata=option(minimum=0, help="time budget of a suggestion the user asked for (0: none)"),
    )
    line_policy: str = field(
        default=_PIPELINE.line_policy,
        metadata=option(choices=LINE_POLICIES, help="auto: a single line in the middle of code"),
    )
    languages: dict[str, bool] = field(
        default_factory=dict,
        metadata=option(
            flags=("--disable-language",),
            metavar="LANGUAGE_ID",
            from_cli=_disabled,
            help="no completion for this language id (repeatable); clients send "
            "{languageId: enabled}",
        ),
    )
    temperature: float = field(
        default=_PIPELINE.temperature,
        metadata=option(minimum=0, help="sampling temperature of a suggestion"),
    )
    alternatives: int = field(
        default=_PIPELINE.alternatives,
        metadata=option(minimum=1, help="suggestions for an explicitly invoked completion"),
    )
    alternative_temperature: float = field(
        default=_PIPELINE.alternative_temperature,
        metadata=option(minimum=0, help="sampling temperature of the alternatives"),
    )
    debounce_ms: int = field(
        default=0,
        metadata=option(
            minimum=0, help="wait before running the model, so a burst collapses to one call"
        ),
    )
    extra_context: bool = field(
        default=True,
        metadata=option(help="chunks of other open or recently edited files in the prompt"),
    )
    chat_max_tokens: int = field(
        default=384, metadata=option(minimum=1, help="most tokens in one chat answer")
    )

    def suggestion(self) -> SuggestSettings:
        """The pipeline's settings: the fields of the same name (``*_ms`` -> ``*_s``)."""
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(SuggestSettings):
            if hasattr(self, spec.name):
                values[spec.name] = getattr(self, spec.name)
            elif spec.name.endswith("_s") and hasattr(self, spec.name[:-2] + "_ms"):
                ms = getattr(self, spec.name[:-2] + "_ms")
                values[spec.name] = ms / 1000.0 if ms else None
        return SuggestSettings(**values)

    def language_enabled(self, language_id: str | None) -> bool:
        """Completion is on for every language unless the user turned it off."""
        if not language_id:
            return True
        return self.languages.get(language_id, self.languages.get("*", True))

    def updated(self, values: Mapping[str, Any], *, source: str) -> ServerSettings:
        """A copy with ``values`` (client spelling) applied.

        ``source`` is ``"init"`` for initializationOptions (the client itself speaks: it may
        declare the workspace trusted) or ``"config"`` for workspace configuration (which
        may not grant trust, and whose model path needs it).
        """
        changes: dict[str, Any] = {}
        for key, raw in _section(values).items():
            name = _snake(key)
            if name not in _FIELDS:
                continue
            try:
                changes[name] = _coerce(name, raw)
            except (TypeError, ValueError) as exc:
                log.warning("ignoring setting %s=%r: %s", key, raw, exc)
        if "trusted" in changes and (source != "init" or self.trusted):
            if source != "init" and changes["trusted"] != self.trusted:
                log.warning("ignoring 'trusted' from workspace configuration")
            del changes["trusted"]
        trusted = changes.get("trusted", self.trusted)
        for name in _FILES_NEED_TRUST:
            if name in changes and not trusted:
                log.warning(
                    "ignoring %s %r from workspace settings: the workspace is not trusted "
                    "(start the server with --trust, or have the editor send trusted=true)",
                    client_name(name),
                    changes.pop(name),
                )
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(ServerSettings)}
# Settings that name a file the server loads into llama.cpp.
_FILES_NEED_TRUST = ("model_path", "adapter_path")


def _section(values: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = values.get(SECTION)
    if isinstance(inner, Mapping):
        merged = {k: v for k, v in values.items() if k != SECTION}
        merged.update(inner)
        return merged
    return values


def _snake(key: str) -> str:
    out = []
    for ch in key:
        if ch.isupper():
            out.append("_")
            out.append(ch.lower())
        else:
            out.append(ch)
    return "".join(out)


def client_name(field_name: str) -> str:
    """How clients spell a setting: ``max_tokens`` -> ``maxTokens``."""
    first, *rest = field_name.split("_")
    return first + "".join(word.capitalize() for word in rest)


def _coerce(name: str, raw: Any) -> Any:
    """A client's value for field ``name``, checked against the field's type and Option."""
    opt = field_option(_FIELDS[name])
    kind, optional = field_type(ServerSettings, name)
    if optional and raw in (None, ""):
        return None
    if kind is bool:
        if not isinstance(raw, bool):
            raise TypeError("expected true or false")
        return raw
    if kind in (int, float):
        allowed = int if kind is int else (int, float)
        if isinstance(raw, bool) or not isinstance(raw, allowed):
            raise TypeError("expected an integer" if kind is int else "expected a number")
        if opt.minimum is not None and raw < opt.minimum:
            raise ValueError(f"must be >= {opt.minimum}")
        return kind(raw)
    if kind is str:
        if not isinstance(raw, str):
            raise TypeError("expected a string")
        if opt.choices is not None and raw not in opt.choices:
            raise ValueError(f"expected one of {', '.join(opt.choices)}")
        return raw
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind(raw)
    if typing.get_origin(kind) is dict:
        key_type, value_type = typing.get_args(kind)
        if not isinstance(raw, Mapping) or not all(
            isinstance(k, key_type) and isinstance(v, value_type) for k, v in raw.items()
        ):
            raise TypeError(f"expected an object of {key_type.__name__}: {value_type.__name__}")
        return dict(raw)
    raise TypeError(f"no client form for {kind}")
