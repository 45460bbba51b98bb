"""Stop rules that look at the text generated so far (pure functions, no model)."""

from __future__ import annotations

from collections.abc import Sequence


def indent_width(line: str, tab_size: int = 4) -> int:
    """Columns of leading whitespace, tabs counted as ``tab_size``."""
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += tab_size
        else:
            break
    return width


def cursor_indent(prefix: str) -> int:
    """Indentation of the line the cursor is on (its text up to the cursor).

    When that line holds only whitespace, the cursor column itself is the indent.
    """
    return indent_width(prefix.rsplit("\n", 1)[-1])


def dedent_cut(text: str, min_indent: int) -> int | None:
    """Where the first complete line indented less than ``min_indent`` starts, if any.

    Only lines after the first newline count (the first line continues the cursor's line),
    and only complete ones (a line still being written may gain indentation). Blank lines
    never stop generation. Returns the index in ``text`` to cut at (the newline before it).
    """
    start = text.find("\n")
    while start != -1:
        end = text.find("\n", start + 1)
        if end == -1:
            return None
        line = text[start + 1 : end]
        if line.strip() and indent_width(line) < min_indent:
            return start
        start = end
    return None


def stop_string_cut(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest stop string in ``text``, if any."""
    hits = [i for i in (text.find(s) for s in stops if s) if i != -1]
    return min(hits) if hits else None
