"""Chat templates from GGUF files, rendered in a sandbox with a budget.

A template is code from an untrusted file. It renders in Jinja's immutable sandbox (no
attribute access to internals, no mutation), with ``range`` and ``*``/``**`` limited by a
shared work budget, and with its output capped in size and time, so a hostile template
can neither escape nor hang the server.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from runtime.errors import TemplateError

MAX_OUTPUT_CHARS = 1_000_000
MAX_WORK = 200_000
MAX_RENDER_S = 2.0

# Used when a model has no template of its own.
LLAMA2_TEMPLATE = (
    "{% if messages and messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] %}{% set messages = messages[1:] %}"
    "{% else %}{% set system = none %}{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'user' %}{{ bos_token }}[INST] "
    "{% if loop.first and system %}<<SYS>>\n{{ system }}\n<</SYS>>\n\n{% endif %}"
    "{{ m['content'] | trim }} [/INST]"
    "{% elif m['role'] == 'assistant' %} {{ m['content'] | trim }} {{ eos_token }}{% endif %}"
    "{% endfor %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class _BudgetedSandbox(ImmutableSandboxedEnvironment):
    """An immutable sandbox whose ranges and repetitions draw on one work budget."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(trim_blocks=True, lstrip_blocks=True, autoescape=False)
        self.work_left = MAX_WORK
        self.globals["range"] = self._range
        self.globals["raise_exception"] = _raise_exception

    def spend(self, amount: int) -> None:
        self.work_left -= max(0, amount)
        if self.work_left < 0:
            raise TemplateError("the chat template does too much work; it was stopped")

    def _range(self, *args: int) -> range:
        r = range(*args)
        self.spend(len(r))
        return r

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int) and abs(right) > 64:
                raise TemplateError("the chat template raises to a huge power; it was stopped")
            return left**right
        if isinstance(left, (str, list, tuple)) and isinstance(right, int):
            self.spend(len(left) * right)
        elif isinstance(right, (str, list, tuple)) and isinstance(left, int):
            self.spend(len(right) * left)
        return left * right


def _raise_exception(message: str) -> None:
    raise TemplateError(f"the chat template refused the conversation: {message}")


def render_chat(
    template: str,
    messages: Sequence[Mapping[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render ``messages`` through ``template``; raises :class:`TemplateError` on any failure."""
    env = _BudgetedSandbox()
    try:
        compiled = env.from_string(template)
        deadline = time.monotonic() + MAX_RENDER_S
        out: list[str] = []
        size = 0
        for piece in compiled.generate(
            messages=[dict(m) for m in messages],
            bos_token=bos_token,
            eos_token=eos_token,
            add_generation_prompt=add_generation_prompt,
        ):
            out.append(piece)
            size += len(piece)
            if size > MAX_OUTPUT_CHARS:
                raise TemplateError("the chat template's output is too large; it was stopped")
            if time.monotonic() > deadline:
                raise TemplateError("the chat template takes too long to render; it was stopped")
        return "".join(out)
    except TemplateError:
        raise
    except JinjaTemplateError as exc:
        raise TemplateError(f"the model's chat template cannot be rendered safely: {exc}") from exc
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, RecursionError) as exc:
        raise TemplateError(f"the model's chat template failed: {exc}") from exc
