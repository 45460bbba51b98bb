"""Instruction tuning in the Llama 2 ``[INST]`` chat format, loss on the answers only.

The text comes from the runtime's own renderer and template (:mod:`runtime.template`), the
template a trained checkpoint carries into its GGUF: a model is trained on exactly the
prompts it is served with. Turning that text into ids follows llama.cpp's rule for text
around special tokens: BOS and EOS are their ids, and a text piece that starts the dialog
or follows a special token gets sentencepiece's leading space, any other piece does not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from llamacode.runtime.errors import LlamacodeError, TemplateError
from llamacode.runtime.template import LLAMA2_TEMPLATE, render_chat
from llamacode.training.tokenizer import Tokenizer

# The chat template of every instruction-tuned checkpoint.
CHAT_TEMPLATE = LLAMA2_TEMPLATE
# Stand-ins for BOS and EOS while rendering: private-use characters, refused in dialogs.
_BOS, _EOS = "\ue000", "\ue001"
_SPECIAL = re.compile(f"({_BOS}|{_EOS})")


class ChatFormatError(LlamacodeError):
    """A dialog that is not system? (user assistant)+ with string contents."""


def check_dialog(messages: Any) -> None:
    """Refuse anything but an optional system message, then user/assistant pairs."""
    if not isinstance(messages, list):
        raise ChatFormatError("'messages' must be a list of {role, content} objects")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise ChatFormatError("each message needs a string 'content'")
        if _SPECIAL.search(m["content"]):
            raise ChatFormatError("message content holds U+E000 or U+E001 (private use)")
    turns = messages[1:] if messages and messages[0].get("role") == "system" else messages
    roles = [m.get("role") for m in turns]
    if not turns or len(turns) % 2 or roles != ["user", "assistant"] * (len(turns) // 2):
        raise ChatFormatError(
            "a dialog alternates user and assistant messages and ends with an assistant answer"
        )


def encode_dialog(
    tok: Tokenizer, messages: Sequence[dict[str, Any]]
) -> tuple[list[int], list[int]]:
    """Token ids and a loss mask (1 on answer tokens and their EOS) for one dialog.

    The dialog is rendered one message more at a time; the text each message adds is
    its part of the prompt, so no knowledge of the format is needed here.
    """
    messages = list(messages)
    check_dialog(messages)
    ids: list[int] = []
    mask: list[int] = []
    rendered = ""
    after_special = True
    first = 1 if messages[0].get("role") == "system" else 0
    for end in range(first + 1, len(messages) + 1):
        try:
            text = render_chat(
                CHAT_TEMPLATE,
                messages[:end],
                bos_token=_BOS,
                eos_token=_EOS,
                add_generation_prompt=False,
            )
        except TemplateError as exc:
            raise ChatFormatError(str(exc)) from exc
        if not text.startswith(rendered):
            raise ChatFormatError("the chat template does not render a dialog message by message")
        piece, rendered = text[len(rendered) :], text
        piece_ids, after_special = _encode(tok, piece, after_special)
        ids += piece_ids
        mask += [int(messages[end - 1]["role"] == "assistant")] * len(piece_ids)
    return ids, mask


def _encode(tok: Tokenizer, text: str, after_special: bool) -> tuple[list[int], bool]:
    """Ids of rendered text with BOS/EOS stand-ins, and whether it ended on a special token."""
    ids: list[int] = []
    for part in _SPECIAL.split(text):
        if part in (_BOS, _EOS):
            ids.append(tok.bos_id if part == _BOS else tok.eos_id)
            after_special = True
        elif part:
            ids += tok.encode(part) if after_special else tok.encode_nospace(part)
            after_special = False
    return ids, after_special
