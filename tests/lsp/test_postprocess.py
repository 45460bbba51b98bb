"""Post-processing rules on raw model output (pure functions)."""

from __future__ import annotations

from lsp.postprocess import (
    CursorContext,
    balance_brackets,
    cut_at_block_exit,
    drop_suffix_repeat,
    finish,
    heal_prefix,
    open_brackets,
    strip_trailing_blank_lines,
    unheal,
    wants_single_line,
)


def ctx(prefix: str, suffix: str = "") -> CursorContext:
    return CursorContext.from_text(prefix, suffix)


def test_single_line_when_code_is_right_of_the_cursor():
    c = ctx("x = foo(", "a, b)\nprint(x)\n")
    assert wants_single_line(c, "auto")
    assert finish("1, 2)\ny = 3", c, single_line=True) == "1, 2"


def test_multi_line_allowed_at_line_end_unless_policy_says_single():
    c = ctx("def f():\n    ", "\n")
    assert not wants_single_line(c, "auto")
    assert wants_single_line(c, "single")
    assert not wants_single_line(ctx("x = (", "y)"), "multi")


def test_stops_when_the_model_leaves_the_block():
    c = ctx("def f(x):\n    if x:\n        ", "\n")
    text = "return 1\n    return 2\nprint('outside')"
    assert cut_at_block_exit(text, c) == "return 1"


def test_block_opened_on_cursor_line_keeps_body_and_closing_brace():
    c = ctx("int f(int x) {", "\n")
    text = "\n    return x;\n}\nint g() {"
    assert cut_at_block_exit(text, c) == "\n    return x;\n}"
    py = ctx("def f(x):", "\n")
    assert cut_at_block_exit("\n    return x\n\ndef g():\n    pass", py) == "\n    return x\n"


def test_blank_lines_do_not_end_the_block():
    c = ctx("def f():\n    ", "")
    assert cut_at_block_exit("a = 1\n\n    b = 2", c) == "a = 1\n\n    b = 2"


def test_drops_rest_of_line_the_suffix_already_has():
    c = ctx("print(", ")\n")
    assert drop_suffix_repeat("value)", c) == "value"
    c2 = ctx("x = ", " + 1\n")
    assert drop_suffix_repeat("y + 1", c2) == "y"


def test_does_not_cut_an_identifier_that_only_partly_matches_the_suffix():
    c = ctx("total = a + ", "b_total\n")
    assert drop_suffix_repeat("b", c) == "b"


def test_stops_before_a_line_that_repeats_the_next_line_of_the_file():
    c = ctx("def f(x):\n    ", "\n    return y\n")
    assert drop_suffix_repeat("y = x * 2\n    return y\n", c) == "y = x * 2"


def test_cuts_at_unmatched_closing_bracket():
    c = ctx("x = ", "\n")
    assert balance_brackets("[1, 2]]", c, single_line=True) == "[1, 2]"
    assert balance_brackets("(1, 2]", c, single_line=True) == "(1, 2"


def test_closer_may_close_what_the_prefix_opened():
    c = ctx("print(len(", "\n")
    assert c.open_brackets == "(("
    assert balance_brackets("items))", c, single_line=True) == "items))"


def test_single_line_suggestion_gets_its_own_brackets_closed():
    c = ctx("x = ", "\n")
    assert balance_brackets("foo(bar[1", c, single_line=True) == "foo(bar[1])"
    assert balance_brackets("foo(\n  1", c, single_line=False) == "foo(\n  1"


def test_brackets_inside_strings_and_comments_are_ignored():
    assert open_brackets("s = '(' + \"[\"  # {\nf(") == "("
    c = ctx("x = ", "\n")
    assert balance_brackets("')' + y", c, single_line=True) == "')' + y"


def test_trailing_whitespace_only_lines_are_stripped():
    assert strip_trailing_blank_lines("a\nb\n   \n\t\n") == "a\nb"
    assert finish("\n\n   ", ctx("x = 1\n"), single_line=False) == ""


def test_crlf_output_is_processed_as_lines():
    c = ctx("def f():\n    ", "\n")
    assert finish("a = 1\r\n    b = 2\r\nc = 3", c, single_line=False) == "a = 1\n    b = 2"


def test_heal_moves_trailing_indentation_out_of_the_prompt_and_back():
    prompt, removed = heal_prefix("def f():\n    ")
    assert (prompt, removed) == ("def f():", "\n    ")
    assert unheal("\n    return 1", removed) == "return 1"
    assert unheal("\n        x = 1", removed) == "    x = 1"
    assert unheal("\n\n    x = 1", removed) == "x = 1"
    assert unheal(" return 1", removed) == ""  # continued the line above


def test_heal_moves_a_trailing_space_out_of_the_prompt():
    assert heal_prefix("x = ") == ("x =", " ")
    assert unheal(" y", " ") == "y"
    assert unheal("  y", "  ") == "y"
    assert unheal("\ny", " ") == "\ny"
    assert heal_prefix("x = y") == ("x = y", "")
    assert heal_prefix("x = 1\n") == ("x = 1\n", "")
