"""Chat templates from GGUF files, rendered in a sandbox, in a child process, on a budget.

A template is code from an untrusted file. It renders in Jinja's immutable sandbox (no
attribute access to internals, no mutation), where ``range``, repetition and integer powers
draw on a work budget and integers are capped in size. That alone cannot bound a render:
a loop that prints nothing, one huge integer operation or a filter that builds gigabytes
runs inside a single step no check can interrupt. So the sandbox runs in a child process
(runtime.template_worker) with its memory and CPU time capped, and the caller waits at
most :data:`MAX_RENDER_S` before the child is killed: a hostile template costs a request
a typed error, never the server's model thread or its memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import TemplateError as JinjaTemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from llamacode.runtime.errors import TemplateError

MAX_OUTPUT_CHARS = 1_000_000
MAX_WORK = 200_000
MAX_INT_BITS = 1 << 16
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

_TOO_BIG = "the chat template builds a value too large to render; it was stopped"


class _BudgetedSandbox(ImmutableSandboxedEnvironment):
    """An immutable sandbox whose ranges, repetitions and powers draw on one work budget.

    Intercepting ``*`` and ``**`` also keeps Jinja from folding them at compile time, where
    ``{{ 'a' * 10**9 }}`` would otherwise be computed before any check ran.
    """

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
            powered_bits = left.bit_length() * right if isinstance(left, int) else 0
            if isinstance(right, int) and powered_bits > MAX_INT_BITS:
                raise TemplateError(_TOO_BIG)
            return _small(left**right)
        if isinstance(left, (str, list, tuple)) and isinstance(right, int):
            self.spend(len(left) * right)
        elif isinstance(right, (str, list, tuple)) and isinstance(left, int):
            self.spend(len(right) * left)
        return _small(left * right)


def _small(value: Any) -> Any:
    """``value`` unless it is an integer beyond :data:`MAX_INT_BITS`."""
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateError(_TOO_BIG)
    return value


def _raise_exception(message: str) -> None:
    raise TemplateError(f"the chat template refused the conversation: {message}")


def render_in_sandbox(
    template: str,
    messages: Sequence[Mapping[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render in this process, budgeted but not bounded (the worker process bounds it)."""
    env = _BudgetedSandbox()
    try:
        compiled = env.from_string(template)
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
        return "".join(out)
    except TemplateError:
        raise
    except MemoryError as exc:
        raise TemplateError(_TOO_BIG) from exc
    except JinjaTemplateError as exc:
        raise TemplateError(f"the model's chat template cannot be rendered safely: {exc}") from exc
    except Exception as exc:  # whatever the template's own code raises
        raise TemplateError(f"the model's chat template failed: {exc!r}") from exc


def render_chat(
    template: str,
    messages: Sequence[Mapping[str, str]],
    *,
    bos_token: str = "",
    eos_token: str = "",
    add_generation_prompt: bool = True,
) -> str:
    """Render ``messages`` through ``template`` within :data:`MAX_RENDER_S` and a memory cap.

    Raises :class:`TemplateError` on any failure, and as soon as the budget is spent.
    """
    from llamacode.runtime.template_worker import shared_worker

    request = {
        "template": template,
        "messages": [dict(m) for m in messages],
        "bos_token": bos_token,
        "eos_token": eos_token,
        "add_generation_prompt": add_generation_prompt,
    }
    return shared_worker().render(request, MAX_RENDER_S)
