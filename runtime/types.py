"""The light types the suggestion path passes around: requests, results, cancellation.

Nothing heavy is imported here (no llama.cpp, no numpy), so the language server and the
CLI can name these types without loading a model.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass, field
from typing import Any

from llamacode.runtime.fim import FimMode


class CancelToken:
    """A flag the caller sets to stop a request; checked before and during generation."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class Generation:
    """One model call's text and what it cost."""

    text: str
    stop_reason: str
    prompt_tokens: int = 0
    evaluated_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0
    ttft_s: float = 0.0
    elapsed_s: float = 0.0
    prompt_mode: str = ""


@dataclass
class EngineStats:
    """Cumulative counters since the model was loaded (benchmarks read these)."""

    requests: int = 0
    cancelled_before_start: int = 0
    cancelled: int = 0
    prompt_tokens: int = 0
    evaluated_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0
    generation_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ContextFile:
    """A piece of another file that goes into the prompt, with the path that names it."""

    path: str
    text: str


@dataclass(frozen=True)
class SuggestRequest:
    """A document, the cursor in it, and what else the model may see."""

    text: str
    offset: int  # the cursor, in characters (code points) from the start of ``text``
    path: str = ""  # the document's path as the prompt names it ("" when unknown)
    context: tuple[ContextFile, ...] = ()  # pieces of other files, oldest first
    invoked: bool = False  # the user asked explicitly: alternatives are sampled too
    language: str = ""  # the editor's language id ("markdown" keeps code fences)


LINE_POLICIES = ("auto", "single", "multi")


@dataclass(frozen=True)
class SuggestSettings:
    """What a user tunes about suggestions (the server's settings carry the same names)."""

    context_budget: int = 1024  # prompt tokens for prefix + suffix + other files
    max_tokens: int = 48
    time_budget_s: float | None = 1.5  # while typing
    asked_time_budget_s: float | None = 8.0  # when the user asked (a larger model, waited for)
    line_policy: str = "auto"  # auto: one line when code is right of the cursor
    temperature: float = 0.0
    alternatives: int = 3  # suggestions for an explicit request
    alternative_temperature: float = 0.8
    fim_mode: FimMode | None = None  # None: the model's measured best layout
    seed: int = 0  # of the first call; alternatives use the next seeds


@dataclass
class Suggestions:
    """What one request produced: the texts to show and what each model call cost."""

    texts: tuple[str, ...]
    generations: list[Generation] = field(default_factory=list)
    single_line: bool = False
    cancelled: bool = False
