"""Llama 2 chat format for instruction tuning: ``[INST]`` turns, loss on the answers only.

A dialog is an optional system message, then alternating user and assistant messages,
ending with an assistant message. Each exchange becomes
``BOS "[INST] {user} [/INST]"`` (no loss) followed by ``" {answer} " EOS`` (loss), with
the system message folded into the first user turn between ``<<SYS>>`` markers, exactly
as :data:`LLAMA2_CHAT_TEMPLATE` renders it for serving.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runtime.errors import LlamacodeError
from training.tokenizer import Tokenizer

LLAMA2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}"
    "{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)


class ChatFormatError(LlamacodeError):
    """A dialog that is not system? (user assistant)+ with string contents."""


def dialog_turns(messages: Any) -> list[tuple[str, str]]:
    """(user text, answer) pairs of a dialog, the system message folded into the first."""
    if not isinstance(messages, list):
        raise ChatFormatError("'messages' must be a list of {role, content} objects")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise ChatFormatError("each message needs a string 'content'")
    system = None
    if messages and messages[0].get("role") == "system":
        system = messages[0]["content"]
        messages = messages[1:]
    roles = [m.get("role") for m in messages]
    if not messages or len(messages) % 2 or roles != ["user", "assistant"] * (len(messages) // 2):
        raise ChatFormatError(
            "a dialog alternates user and assistant messages and ends with an assistant answer"
        )
    turns = []
    for turn in range(0, len(messages), 2):
        user = messages[turn]["content"]
        if turn == 0 and system is not None:
            user = f"<<SYS>>\n{system}\n<</SYS>>\n\n{user}"
        turns.append((user, messages[turn + 1]["content"]))
    return turns


def encode_dialog(
    tok: Tokenizer, messages: Sequence[dict[str, Any]]
) -> tuple[list[int], list[int]]:
    """Token ids and a loss mask (1 on answer tokens and their EOS) for one dialog."""
    ids: list[int] = []
    mask: list[int] = []
    for user, answer in dialog_turns(list(messages)):
        prompt = tok.encode(f"[INST] {user.strip()} [/INST]", bos=True)
        reply = [*tok.encode_nospace(f" {answer.strip()} "), tok.eos_id]
        ids += prompt + reply
        mask += [0] * len(prompt) + [1] * len(reply)
    return ids, mask
