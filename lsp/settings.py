"""Server settings: one dataclass, filled from CLI flags, initializationOptions and
workspace/didChangeConfiguration.

Clients send camelCase keys (``maxTokens``), either flat or under a ``llamacode``
section. Unknown keys are ignored; values of the wrong type are rejected one by one
with a message, so one typo never discards the rest of the settings.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

LINE_POLICIES = ("auto", "single", "multi")
SECTION = "llamacode"


@dataclass
class ServerSettings:
    """Everything a user can tune about completion and chat.

    ``model_path`` from workspace settings is honoured only when ``trusted`` is true
    (a workspace could otherwise make the editor load any file it names).
    """

    model_path: str | None = None
    trusted: bool = False
    context_budget: int = 1024  # prompt tokens for prefix + suffix + extra chunks
    max_tokens: int = 48
    time_budget_ms: int = 1500
    line_policy: str = "auto"  # auto: single line when code is right of the cursor
    languages: dict[str, bool] = field(default_factory=dict)  # languageId -> enabled
    temperature: float = 0.0
    alternatives: int = 3  # items for an explicitly invoked inline completion
    alternative_temperature: float = 0.8
    debounce_ms: int = 0  # wait before running the model, so a burst collapses to one call
    extra_context: bool = True  # chunks from other open / recently edited files
    chat_max_tokens: int = 384

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
        if "model_path" in changes and not trusted:
            log.warning(
                "ignoring modelPath %r from workspace settings: the workspace is not trusted "
                "(start the server with --trust, or have the editor send trusted=true)",
                changes["model_path"],
            )
            del changes["model_path"]
        return dataclasses.replace(self, **changes)


_FIELDS = {f.name: f for f in dataclasses.fields(ServerSettings)}


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


def _coerce(name: str, raw: Any) -> Any:
    if name == "model_path":
        if raw is None or raw == "":
            return None
        if not isinstance(raw, str):
            raise TypeError("expected a file path string")
        return raw
    if name in ("trusted", "extra_context"):
        if not isinstance(raw, bool):
            raise TypeError("expected true or false")
        return raw
    if name in (
        "context_budget",
        "max_tokens",
        "time_budget_ms",
        "alternatives",
        "debounce_ms",
        "chat_max_tokens",
    ):
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise TypeError("expected an integer")
        low = (
            1 if name in ("context_budget", "max_tokens", "alternatives", "chat_max_tokens") else 0
        )
        if raw < low:
            raise ValueError(f"must be >= {low}")
        return raw
    if name in ("temperature", "alternative_temperature"):
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise TypeError("expected a number")
        if raw < 0:
            raise ValueError("must be >= 0")
        return float(raw)
    if name == "line_policy":
        if raw not in LINE_POLICIES:
            raise ValueError(f"expected one of {', '.join(LINE_POLICIES)}")
        return raw
    if name == "languages":
        if not isinstance(raw, Mapping) or not all(
            isinstance(k, str) and isinstance(v, bool) for k, v in raw.items()
        ):
            raise TypeError("expected an object of languageId: true/false")
        return dict(raw)
    raise ValueError("unknown setting")
