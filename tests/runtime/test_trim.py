"""Where a suggestion ends and how it is tidied: the trim rules on text (pure functions)."""

from __future__ import annotations

from llamacode.runtime.trim import (
    CursorContext,
    Trim,
    balance_brackets,
    drop_suffix_repeat,
    early_cut,
    finish,
    heal_prefix,
    open_brackets,
    strip_trailing_blank_lines,
    unheal,
    wants_single_line,
)


def ctx(prefix: str, suffix: str = "") -> CursorContext:
    return CursorContext.from_text(prefix, suffix)


def multi(text: str, c: CursorContext) -> str:
    return finish(text, c, single_line=False)


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
    assert multi(text, c) == "return 1"


def test_block_opened_on_cursor_line_keeps_body_and_closing_brace():
    c = ctx("int f(int x) {", "\n")
    text = "\n    return x;\n}\nint g() {"
    assert multi(text, c) == "\n    return x;\n}"
    py = ctx("def f(x):", "\n")
    assert multi("\n    return x\n\ndef g():\n    pass", py) == "\n    return x"


def test_blank_lines_do_not_end_the_block():
    c = ctx("def f():\n    ", "")
    assert multi("a = 1\n\n    b = 2", c) == "a = 1\n\n    b = 2"


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
    assert multi("y = x * 2\n    return y\n", c) == "y = x * 2"
    assert early_cut("y = x * 2\n    return y\n", c, single_line=False, final=False) == (
        9,
        "suffix",
    )


def test_a_markdown_fence_ends_the_suggestion_as_soon_as_it_starts():
    c = ctx("def f(x):\n    ", "\n")
    raw = "return x + 1\n```\n\nThis Python code snippet defines"
    assert multi(raw, c) == "return x + 1"
    assert early_cut("return x + 1\n```", c, single_line=False, final=False) == (12, "fence")
    doc = ctx("Run it:\n", "")
    assert finish("```sh\nmake\n```", doc, single_line=False, fences=False) == "```sh\nmake\n```"


def test_a_test_harness_after_the_middle_is_cut_at_the_dedent():
    c = ctx("def add(a, b):\n    ", "\n")
    raw = "return a + b\n\nassert add(1, 2) == 3\nprint('ok')"
    assert multi(raw, c) == "return a + b"


def test_one_line_wanted_ends_at_the_line_break():
    c = ctx("x = foo(", "a)\n")
    assert early_cut("1, 2\ny", c, single_line=True, final=False) == (4, "newline")
    assert early_cut("\n1", c, single_line=True, final=False) == (0, "newline")


def test_trim_cuts_raw_text_that_still_holds_the_healed_indentation():
    _, healed = heal_prefix("def f(x):\n    ")
    rules = Trim(ctx("def f(x):\n    ", "\n"), healed, single_line=False)
    raw = "    return x\nprint(1)"
    assert rules.cut(raw, False) == (len("    return x"), "dedent")
    assert rules.finish(raw) == "return x"


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
    assert (prompt, removed) == ("def f():\n", "    ")
    assert unheal("    return 1", removed) == "return 1"
    assert unheal("        x = 1", removed) == "    x = 1"
    assert unheal("x = 1", removed) == "x = 1"  # the user's indentation stays as typed


def test_heal_moves_a_trailing_space_out_of_the_prompt():
    assert heal_prefix("x = ") == ("x =", " ")
    assert unheal(" y", " ") == "y"
    assert unheal("  y", "  ") == "y"
    assert unheal("\ny", " ") == "\ny"
    assert heal_prefix("x = y") == ("x = y", "")
    assert heal_prefix("x = 1\n") == ("x = 1\n", "")
    assert heal_prefix("x = 1\n\t") == ("x = 1\n", "\t")


def test_a_blank_line_in_the_middle_of_a_block_wants_one_line():
    body = "def f(xs):\n    total = 0\n"
    assert wants_single_line(ctx(body, "\n    return total\n"), "auto")
    opened = "def f(xs):\n"
    assert wants_single_line(ctx(opened, "\n    return 0\n"), "auto")  # the body exists


def test_the_end_of_a_block_or_an_empty_block_wants_several_lines():
    assert not wants_single_line(ctx("def f(xs):\n    x = 1\n", "\n\ndef g():\n"), "auto")
    assert not wants_single_line(ctx("def f(xs):\n", "\n\ndef g():\n"), "auto")
    assert not wants_single_line(ctx("def f(xs):\n    x = 1\n", ""), "auto")


def test_on_a_blank_line_the_first_line_of_the_suggestion_sets_the_block():
    c = ctx('def f(xs):\n    """Sum."""\n', "\n")
    raw = "    return sum(xs)\n\n\n# Check function to verify the solution\ndef check():"
    assert multi(raw, c) == "    return sum(xs)"


def test_a_first_line_that_is_the_next_line_of_the_file_is_not_shown():
    c = ctx("def f(xs):\n    xs.sort()\n", "\n    ans = []\n    return ans\n")
    assert finish("    ans = []", c, single_line=True) == ""


def test_one_line_that_opens_a_block_without_a_body_below_keeps_its_body():
    c = ctx("def f(n):\n", "\n    total = 0\n")
    raw = "    if n < 0:\n        n = -n\n    total = 0"
    assert finish(raw, c, single_line=True) == "    if n < 0:\n        n = -n"
    with_body = ctx("def f(n):\n", "\n        n = -n\n")
    assert finish("    if n < 0:\n        n = -n", with_body, single_line=True) == "    if n < 0:"
