"""The suggestion pipeline: a document and a cursor in, the suggestions an editor shows out.

One function, :func:`suggest`, serves the language server, `llamacode complete` and
`infill`, `llamacode demo`, the evaluations and the benchmarks, so every quality and speed
figure measures what a user sees. A keystroke reads top to bottom:

1. window   - prefix and suffix windows measured in tokens; their edges snap to a grid of
              lines, so the prompt's start stays the same while the user types
              (runtime.context.build_window)
2. context  - pieces of other files that fit their share of the budget (fit_context)
3. heal     - trailing indentation leaves the prompt; the model writes it (trim.heal_prefix)
4. prompt   - the model's FIM layout, repository-level when it has the tokens
              (Engine.infill_prompt -> runtime.fim)
5. generate - greedy, plus sampled alternatives when the user asked; the trim rules end
              each one as soon as the suggestion is over (Engine.generate + trim.Trim.cut)
6. trim     - the final text: end of line, block exit, suffix run-in, fences, repeated
              suffix, brackets (trim.Trim.finish)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

from llamacode.runtime.config import GenerationConfig
from llamacode.runtime.context import Budget, build_window, fit_context
from llamacode.runtime.trim import CursorContext, Trim, heal_prefix, wants_single_line
from llamacode.runtime.types import (
    CancelToken,
    Generation,
    Suggestions,
    SuggestRequest,
    SuggestSettings,
)

if TYPE_CHECKING:
    from llamacode.runtime.engine import Engine

# Stop reasons that leave the last line unfinished: it is dropped rather than shown cut.
_UNFINISHED = ("time", "max_tokens", "context")
# Tokens kept free for BOS, the FIM control tokens and the repository preamble's own tokens.
_MODEL_MARGIN = 8


def suggest(
    engine: Engine,
    request: SuggestRequest,
    settings: SuggestSettings | None = None,
    cancel: CancelToken | None = None,
) -> Suggestions:
    """Suggestions at the cursor of ``request`` from ``engine``.

    Runs on the caller's thread (the language server's model worker); ``cancel`` stops it
    between tokens and before each model call.
    """
    settings = settings or SuggestSettings()
    prompt = _prompt(engine, request, settings)
    result = Suggestions((), single_line=prompt.rules.single_line)
    texts: list[str] = []
    for config in _alternatives(prompt.config, settings, request.invoked):
        if cancel is not None and cancel.cancelled:
            break
        produced = engine.generate(
            prompt.ids, config, cancel, cut=prompt.rules.cut, mode=prompt.mode
        )
        result.generations.append(produced)
        complete = produced.stop_reason not in _UNFINISHED
        shown = prompt.rules.finish(produced.text, complete=complete)
        if shown and shown not in texts:
            texts.append(shown)
    result.cancelled = cancel is not None and cancel.cancelled
    if not result.cancelled:
        crlf = "\r\n" in request.text
        result.texts = tuple(t.replace("\n", "\r\n") for t in texts) if crlf else tuple(texts)
    return result


def warm(
    engine: Engine,
    request: SuggestRequest,
    settings: SuggestSettings | None = None,
    cancel: CancelToken | None = None,
) -> Generation:
    """Evaluate the prompt a request at this cursor would have, and generate nothing, so the
    next keystroke here finds its KV cache ready (the editor calls this when it goes idle)."""
    prompt = _prompt(engine, request, settings or SuggestSettings())
    config = dataclasses.replace(prompt.config, max_tokens=0)
    return engine.generate(prompt.ids, config, cancel, mode=prompt.mode)


@dataclass(frozen=True)
class _Prompt:
    ids: list[int]
    mode: str
    rules: Trim
    config: GenerationConfig


def _prompt(engine: Engine, request: SuggestRequest, settings: SuggestSettings) -> _Prompt:
    """Steps 1-4: windows, other files, healing, the FIM layout; and the trim rules."""
    prefix, suffix = request.text[: request.offset], request.text[request.offset :]
    if "\r\n" in request.text:
        prefix, suffix = prefix.replace("\r\n", "\n"), suffix.replace("\r\n", "\n")
    total = min(settings.context_budget, engine.n_ctx - settings.max_tokens - _MODEL_MARGIN)
    budget = Budget.split(total, with_extra=bool(request.context))
    window = build_window(prefix, suffix, budget, engine.count_line)
    context = fit_context(request.context, budget.extra, engine.count_tokens)

    cursor = CursorContext.from_text(window.prefix, window.suffix)
    single = wants_single_line(cursor, settings.line_policy)
    prompt_prefix, healed = heal_prefix(window.prefix)
    config = _generation_config(settings, request.invoked)
    ids, mode = engine.infill_prompt(
        prompt_prefix, window.suffix, context, config, path=request.path
    )
    rules = Trim(cursor, healed, single, in_markdown=request.language == "markdown")
    return _Prompt(ids, mode, rules, config)


def _generation_config(settings: SuggestSettings, invoked: bool) -> GenerationConfig:
    return GenerationConfig(
        max_tokens=settings.max_tokens,
        time_budget_s=settings.asked_time_budget_s if invoked else settings.time_budget_s,
        temperature=settings.temperature,
        seed=settings.seed,
        fim_mode=settings.fim_mode,
    )


def _alternatives(
    first: GenerationConfig, settings: SuggestSettings, invoked: bool
) -> list[GenerationConfig]:
    """The greedy (or ``temperature``) call; sampled ones with other seeds when asked."""
    configs = [first]
    if invoked:
        for seed in range(1, settings.alternatives):
            configs.append(
                GenerationConfig(
                    max_tokens=first.max_tokens,
                    time_budget_s=first.time_budget_s,
                    temperature=settings.alternative_temperature,
                    seed=first.seed + seed,
                    fim_mode=first.fim_mode,
                )
            )
    return configs
