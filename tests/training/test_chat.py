"""Instruction-tuning examples are the runtime's chat prompt, token for token."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamacode.runtime.template import render_chat
from llamacode.training.chat import CHAT_TEMPLATE, ChatFormatError, encode_dialog

DIALOG = [
    {"role": "system", "content": "Answer with code."},
    {"role": "user", "content": "Write a function that adds two numbers."},
    {"role": "assistant", "content": "def add(x, y):\n    return x + y"},
    {"role": "user", "content": "  And one that returns None?  "},
    {"role": "assistant", "content": "def nothing():\n    return None\n"},
]


def test_dialog_ids_are_what_llama_cpp_makes_of_the_served_prompt(
    tmp_path: Path, tokenizer, tokenizer_path: Path
) -> None:
    from llama_cpp import Llama

    from llamacode.convert.export_gguf import export_gguf
    from tests.convert.convert_helpers import make_model, write_checkpoint

    model = make_model(vocab_size=tokenizer.vocab_size)
    ckpt = write_checkpoint(tmp_path / "ckpt", model, tokenizer_path, None, CHAT_TEMPLATE)
    gguf = tmp_path / "chat.gguf"
    export_gguf(ckpt, gguf, "f32", progress=False)
    llm = Llama(model_path=str(gguf), vocab_only=True, verbose=False)
    try:
        bos, eos = (tokenizer.sp.id_to_piece(i) for i in (tokenizer.bos_id, tokenizer.eos_id))
        # What the engine sends llama.cpp to continue the dialog after each answer.
        prompt = render_chat(CHAT_TEMPLATE, DIALOG, bos_token=bos, eos_token=eos)
        served = llm.tokenize(prompt.encode(), add_bos=False, special=True)
    finally:
        llm.close()
    ids, _ = encode_dialog(tokenizer, DIALOG)
    assert ids == served
    assert ids.count(tokenizer.bos_id) == 2 and ids.count(tokenizer.eos_id) == 2


def test_loss_falls_on_the_answers_and_their_end_only(tokenizer) -> None:
    ids, mask = encode_dialog(tokenizer, DIALOG)
    answered = [t for t, m in zip(ids, mask, strict=True) if m]
    prompted = [t for t, m in zip(ids, mask, strict=True) if not m]
    assert tokenizer.eos_id in answered and tokenizer.bos_id in prompted
    trained = tokenizer.decode(answered)
    assert "def add(x, y):" in trained and "return None" in trained
    assert "[INST]" not in trained and "numbers" not in trained
    assert "Answer with code." in tokenizer.decode(prompted)


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": "unanswered"}],
        [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}],
        [{"role": "user", "content": "q\ue000"}, {"role": "assistant", "content": "a"}],
    ],
)
def test_malformed_dialogs_are_refused(tokenizer, messages) -> None:
    with pytest.raises(ChatFormatError):
        encode_dialog(tokenizer, messages)
