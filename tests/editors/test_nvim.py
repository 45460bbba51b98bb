"""The Neovim plugin in a real headless Neovim against the real language server and model."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.editors.harness import PLUGIN, Editor, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SOURCE = "def fibonacci(n):\n    "
# Characters that take 2, 3 and 4 bytes in UTF-8 and 1 or 2 units in UTF-16: a warm position
# must count them in the client's offset encoding.
WIDE = 'def greet(name):\n    return "h\u00e9llo \u20ac \U0001f600 " + name\n'


def start(editor: Editor, name: str) -> str:
    """Open a fresh file, type at the end of its last line, and return the ghost text."""
    editor.open(name, SOURCE + "\n")
    editor.nvim.command("normal! G")
    return editor.type_until_ghost("A")


def test_typing_in_insert_mode_shows_ghost_text_as_extmarks(editor: Editor) -> None:
    ghost = start(editor, "typing.py")
    assert ghost.strip()
    assert editor.mode() == "i"
    marks = editor.marks()
    assert len(marks) == 1
    _, row, col, details = marks[0]
    assert (row, col) == (1, 4)
    shown = "".join(t for t, _ in details.get("virt_text", []))
    below = ["".join(t for t, _ in line) for line in details.get("virt_lines", [])]
    assert "\n".join([shown, *below]) == ghost
    # the buffer itself is unchanged: ghost text is only drawn
    assert editor.lines()[:2] == ["def fibonacci(n):", "    "]


def test_accept_inserts_the_whole_suggestion(editor: Editor) -> None:
    ghost = start(editor, "accept.py")
    editor.nvim.input("<Tab>")
    expected = (SOURCE + ghost).split("\n")
    wait_for(lambda: editor.lines()[: len(expected)] == expected, timeout=10, what="accept")
    cursor = editor.nvim.current.window.cursor
    assert cursor[0] == len(expected)
    assert editor.mode() == "i"


def test_accept_line_inserts_only_the_next_line(editor: Editor) -> None:
    ghost = start(editor, "accept_line.py")
    first, nl, rest = ghost.partition("\n")
    if not first:
        # the suggestion starts a new line: accept-line takes that whole next line
        first_next, _, rest = rest.partition("\n")
        taken, expected = "\n" + first_next, ["def fibonacci(n):", "    ", first_next]
    else:
        taken, expected = first, ["def fibonacci(n):", "    " + first]
    editor.nvim.input("<M-Down>")
    wait_for(lambda: editor.lines()[: len(expected)] == expected, timeout=10, what="accept line")
    assert len(editor.lines()) == len(expected)  # nothing more was inserted
    if nl and rest:
        # the rest of the suggestion stays on screen, ready for the next accept
        assert editor.ghost() == ghost[len(taken) :]
    assert editor.mode() == "i"


def test_accept_word_inserts_the_next_word(editor: Editor) -> None:
    ghost = start(editor, "accept_word.py")
    word = editor.lua("return require('llamacode.text').next_word(...)", ghost)
    assert word and ghost.startswith(word)
    editor.nvim.input("<M-Right>")
    if "\n" in word:
        return
    wait_for(lambda: editor.lines()[1] == "    " + word, timeout=10, what="accept word")


def test_escape_clears_the_ghost_text(editor: Editor) -> None:
    start(editor, "escape.py")
    assert editor.marks()
    editor.nvim.input("<Esc>")
    wait_for(lambda: editor.mode() == "n", timeout=10, what="normal mode")
    assert editor.marks() == []
    assert editor.ghost() is None
    assert editor.lines()[:2] == ["def fibonacci(n):", "    "]


def test_typing_the_suggestion_keeps_the_rest_on_screen(editor: Editor) -> None:
    ghost = start(editor, "typed_through.py")
    head = ghost[0]
    assert head != "\n", "this test needs a suggestion that continues the line"
    editor.nvim.input("<Space>" if head == " " else head)
    wait_for(lambda: editor.lines()[1] == "    " + head, timeout=10, what="typed char")
    if len(ghost) > 1:
        assert wait_for(editor.ghost, timeout=10, what="the rest") == ghost[1:]
        assert editor.marks()[0][2] == 5


def test_typing_something_else_drops_the_suggestion(editor: Editor) -> None:
    ghost = start(editor, "retype.py")
    other = "Q" if ghost.startswith("Z") else "Z"
    requests_before = editor.stats()["requests"]
    editor.nvim.input(other)
    wait_for(lambda: editor.lines()[1] == "    " + other, timeout=10, what="typed char")
    # the old suggestion (anchored before the typed char) is gone at once ...
    wait_for(lambda: all(col == 5 for _, _, col, _ in editor.marks()), timeout=10, what="old ghost")
    # ... and a new one is asked for at the new cursor position
    wait_for(lambda: editor.stats()["requests"] > requests_before, timeout=30, what="a new request")


def test_accept_key_keeps_its_meaning_when_nothing_is_shown(editor: Editor) -> None:
    editor.normal_mode()
    editor.nvim.command("enew")
    editor.nvim.command("setlocal buftype=nofile noexpandtab")
    editor.nvim.input("ia<Tab>b<Esc>")
    wait_for(lambda: editor.lines() == ["a\tb"], timeout=10, what="a literal tab")


def test_status_reports_the_model_and_counts_acceptance(editor: Editor) -> None:
    start(editor, "status.py")
    accepted_before = editor.stats()["acceptance"]["accepted"]
    editor.nvim.input("<Tab>")
    wait_for(
        lambda: editor.stats()["acceptance"]["accepted"] == accepted_before + 1,
        timeout=10,
        what="the acceptance to be counted",
    )
    editor.normal_mode()
    stats = editor.stats()
    assert stats["model"]["state"] == "ready"
    assert stats["model"]["path"].endswith(".gguf")
    editor.nvim.command("LlamacodeStatus")
    text = wait_for(
        lambda: "\n".join(editor.lines()) if editor.lines()[0] == "llamacode status" else None,
        timeout=10,
        what="the status window",
    )
    assert "model.path:" in text
    assert "latency_ms.p50:" in text
    assert "cache.hit_rate:" in text
    editor.nvim.command("close")


def test_chat_streams_an_answer_into_the_chat_buffer(editor: Editor) -> None:
    progress = editor.lua(
        "_G.llamacode_reports = 0"
        " vim.api.nvim_create_autocmd('LspProgress', {callback = function(ev)"
        "   local v = ev.data.params.value"
        "   if type(v) == 'table' and v.kind == 'report' then"
        "     _G.llamacode_reports = _G.llamacode_reports + 1 end end})"
        " return true"
    )
    assert progress
    editor.lua(
        "vim.api.nvim_create_autocmd('User', {pattern = 'LlamacodeChatDone', once = true,"
        " callback = function() _G.llamacode_chat_done = true end})"
    )
    editor.nvim.command("LlamacodeChat Say hello in one short sentence.")
    wait_for(lambda: editor.lua("return _G.llamacode_chat_done"), timeout=120, what="chat")
    buf = editor.lua("return require('llamacode.chat').buffer()")
    lines = editor.lua("return vim.api.nvim_buf_get_lines(..., 0, -1, false)", buf)
    assert lines[0] == "## You"
    assert "Say hello in one short sentence." in lines
    answer_at = lines.index("## llamacode")
    answer = "\n".join(lines[answer_at + 1 : lines.index("## You", answer_at)]).strip()
    assert answer and not answer.startswith("[error")
    assert editor.lua("return _G.llamacode_reports") >= 2  # streamed in pieces
    messages = editor.lua(
        "return require('llamacode.chat').parse(vim.api.nvim_buf_get_lines(..., 0, -1, false))",
        buf,
    )
    assert [m["role"] for m in messages] == ["user", "assistant"]


def test_help_file_documents_setup_options_and_commands(editor: Editor, tmp_path: Path) -> None:
    doc = tmp_path / "doc"
    doc.mkdir()
    source = PLUGIN / "doc" / "llamacode.txt"
    (doc / "llamacode.txt").write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    editor.nvim.command(f"helptags {doc}")
    editor.nvim.command(f"set runtimepath^={tmp_path}")
    for tag in ("llamacode-options", ":LlamacodeChat", ":LlamacodeStatus", "llamacode-keys"):
        editor.nvim.command(f"help {tag}")
        assert editor.nvim.current.buffer.name.endswith("llamacode.txt"), tag
        editor.nvim.command("helpclose")


def test_partial_accept_picks_the_next_line_or_word(editor: Editor) -> None:
    cases = editor.lua(
        "local t = require('llamacode.text')"
        " return { t.next_line('a + b\\nc'), t.next_line('\\n    x\\ny'), t.next_line('abc'),"
        " t.next_word('  foo(bar)'), t.next_word('(bar)'), t.next_word('\\n    x') }"
    )
    assert cases == ["a + b", "\n    x", "abc", "  foo", "(", "\n    "]


def test_setup_rejects_unknown_options(editor: Editor) -> None:
    ok, message = editor.lua(
        "local ok, err = pcall(require('llamacode.config').resolve, { keyz = {} })"
        " return { ok, tostring(err) }"
    )
    assert not ok
    assert 'unknown option "keyz"' in message


def lsp_units(text: str, encoding: str) -> int:
    """Length of ``text`` in an LSP position encoding."""
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-16":
        return len(text.encode("utf-16-le")) // 2
    return len(text)


def record_warm_notifications(editor: Editor) -> None:
    """Collect the positions of the `llamacode/warm` notifications Neovim sends from now on."""
    editor.lua(
        "_G.llamacode_warms = {}"
        " vim.api.nvim_create_autocmd('LspNotify', {"
        "   group = vim.api.nvim_create_augroup('llamacode_test_warm', {clear = true}),"
        "   callback = function(ev)"
        "     if ev.data.method == 'llamacode/warm' then"
        "       table.insert(_G.llamacode_warms, ev.data.params.position) end end})"
    )


def warm_notifications(editor: Editor) -> list[dict[str, int]]:
    return editor.lua("return _G.llamacode_warms")


def model_idle(editor: Editor) -> None:
    """Wait until nothing waits for the model: the server skips warming while it is busy."""
    wait_for(
        lambda: editor.stats()["model"]["queue"]["waiting"] == 0, timeout=60, what="an idle model"
    )


@contextmanager
def options(editor: Editor, **changed: Any) -> Iterator[None]:
    """Run setup() again with some options changed, and restore the test's own afterwards."""
    editor.lua(
        "_G.llamacode_saved_opts = require('llamacode.server').opts"
        " require('llamacode').setup(vim.tbl_extend('force', _G.llamacode_saved_opts, ...))",
        changed,
    )
    try:
        yield
    finally:
        editor.normal_mode()
        editor.lua("require('llamacode').setup(_G.llamacode_saved_opts)")


def test_resting_in_insert_mode_warms_the_cache_at_the_cursor(editor: Editor) -> None:
    # Without automatic suggestions nothing else asks for the model at the cursor, so the
    # server's warming is not superseded by a suggestion request.
    with options(editor, auto_trigger=False):
        editor.open("warm_insert.py", WIDE)
        record_warm_notifications(editor)
        model_idle(editor)
        warmed_before = editor.stats()["warmed"]
        editor.nvim.input("2GA")
        wait_for(lambda: editor.mode() == "i", timeout=10, what="insert mode")
        line = editor.lines()[1]
        assert editor.nvim.current.window.cursor == (2, len(line.encode("utf-8")))
        editor.nvim.command("doautocmd CursorHoldI")
        wait_for(
            lambda: editor.stats()["warmed"] > warmed_before, timeout=60, what="the cache warming"
        )
        encoding = editor.lua(
            "return vim.lsp.get_clients({name='llamacode', bufnr=0})[1].offset_encoding"
        )
        at_end = {"line": 1, "character": lsp_units(line, encoding)}
        assert warm_notifications(editor) == [at_end]

        # Resting again at the same place in the same text sends nothing new; a new place does.
        editor.nvim.command("doautocmd CursorHoldI")
        editor.nvim.input("<Home>")
        wait_for(lambda: editor.nvim.current.window.cursor == (2, 0), timeout=10, what="<Home>")
        editor.nvim.command("doautocmd CursorHoldI")
        wait_for(
            lambda: len(warm_notifications(editor)) >= 2,
            timeout=10,
            what="the second warm notification",
        )
        assert warm_notifications(editor) == [at_end, {"line": 1, "character": 0}]


def test_resting_in_normal_mode_warms_the_cache_at_the_cursor(editor: Editor) -> None:
    editor.open("warm_normal.py", WIDE)
    model_idle(editor)
    warmed_before = editor.stats()["warmed"]
    editor.nvim.current.window.cursor = (1, 4)
    editor.nvim.command("doautocmd CursorHold")
    wait_for(lambda: editor.stats()["warmed"] > warmed_before, timeout=60, what="the cache warming")


def test_warm_false_leaves_the_cursor_hold_events_alone(editor: Editor) -> None:
    hooked = "return #vim.api.nvim_get_autocmds({group = 'llamacode', event = 'CursorHoldI'})"
    assert editor.lua(hooked) == 1
    with options(editor, warm=False):
        assert editor.lua(hooked) == 0
    ok, message = editor.lua(
        "local ok, err = pcall(require('llamacode.config').resolve, { warm = 'yes' })"
        " return { ok, tostring(err) }"
    )
    assert not ok
    assert "warm" in message
