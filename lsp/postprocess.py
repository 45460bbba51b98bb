"""Turn raw model output into a suggestion an editor can show as ghost text.

Pure functions on strings (no model, no LSP): the rules a user notices when they are
missing. Single line when code sits right of the cursor; stop when the model leaves the
block; never repeat what already follows the cursor; brackets that match; no trailing
blank lines.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.stops import indent_width

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}
_BLOCK_ENDS = ("}", ")", "]", "end", "fi", "done", "esac")
_TRAILING_BLANK = re.compile(r"(?:\n[ \t]*)+\Z")


@dataclass(frozen=True)
class CursorContext:
    """What post-processing needs to know about the text around the cursor."""

    line_prefix: str  # the cursor line up to the cursor
    line_suffix: str  # the cursor line after the cursor, without its line break
    next_lines: str  # the text after the cursor line (may be empty)
    open_brackets: str  # brackets opened before the cursor and still open, innermost last

    @classmethod
    def from_text(cls, prefix: str, suffix: str) -> CursorContext:
        """Build from the text before and after the cursor (``\\n`` line breaks)."""
        line_prefix = prefix.rsplit("\n", 1)[-1]
        line_suffix, _, next_lines = suffix.partition("\n")
        return cls(line_prefix, line_suffix, next_lines, open_brackets(prefix[-4000:]))


def code_right_of_cursor(ctx: CursorContext) -> bool:
    """True when the cursor line has something other than whitespace after the cursor."""
    return bool(ctx.line_suffix.strip())


def wants_single_line(ctx: CursorContext, policy: str) -> bool:
    """Apply the line policy: ``single``, ``multi`` or ``auto`` (single when code is right)."""
    if policy == "single":
        return True
    if policy == "multi":
        return False
    return code_right_of_cursor(ctx)


def finish(text: str, ctx: CursorContext, *, single_line: bool) -> str:
    """All rules in order; returns "" when nothing worth showing is left."""
    text = text.replace("\r\n", "\n")
    if single_line:
        text = text.split("\n", 1)[0]
    text = cut_at_block_exit(text, ctx)
    text = drop_suffix_repeat(text, ctx)
    text = balance_brackets(text, ctx, single_line=single_line)
    text = strip_trailing_blank_lines(text)
    return text if text.strip() else ""


def cut_at_block_exit(text: str, ctx: CursorContext) -> str:
    """Stop before the first line indented less than the block the cursor is in.

    The block's indentation is that of the cursor line. When the cursor line opens a
    block (ends with ``:``, ``{``, ``(`` or ``[``), a line back at the cursor line's
    indentation ends the suggestion, except a closing line (``}``, ``end``...) which is
    kept as the last line.
    """
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    cursor_line = ctx.line_prefix + ctx.line_suffix
    base = indent_width(cursor_line) if cursor_line.strip() else indent_width(ctx.line_prefix)
    first_line = ctx.line_prefix + lines[0]
    opens_block = first_line.rstrip().endswith((":", "{", "(", "["))
    kept = [lines[0]]
    for line in lines[1:]:
        if line.strip():
            width = indent_width(line)
            if width < base:
                break
            if opens_block and width == base:
                if line.strip().startswith(_BLOCK_ENDS):
                    kept.append(line)
                break
        kept.append(line)
    return "\n".join(kept)


def drop_suffix_repeat(text: str, ctx: CursorContext) -> str:
    """Remove output that repeats the text already after the cursor.

    Line level: stop at a generated line equal to the next non-blank line of the file.
    Character level: drop a tail of the last line that repeats the start of the rest of
    the cursor line (only when that repeated part is the whole rest of the line, or
    punctuation such as closing brackets, so an identifier is never cut in half).
    """
    following = next((ln.strip() for ln in ctx.next_lines.split("\n") if ln.strip()), "")
    lines = text.split("\n")
    if following:
        for i, line in enumerate(lines[1:], start=1):
            if line.strip() == following:
                lines = lines[:i]
                break
    rest = ctx.line_suffix.strip()
    if rest:
        last = lines[-1]
        for k in range(min(len(rest), len(last)), 0, -1):
            piece = rest[:k]
            if last.endswith(piece) and (k == len(rest) or not _has_word_char(piece)):
                lines[-1] = last[: len(last) - k].rstrip() if k == len(rest) else last[:-k]
                break
    return "\n".join(lines)


def _has_word_char(text: str) -> bool:
    return any(ch.isalnum() or ch == "_" for ch in text)


def open_brackets(text: str) -> str:
    """Brackets opened in ``text`` and not closed, innermost last (strings skipped)."""
    stack: list[str] = []
    for ch in _code_chars(text):
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS and stack and stack[-1] == CLOSERS[ch]:
            stack.pop()
    return "".join(stack)


def balance_brackets(text: str, ctx: CursorContext, *, single_line: bool) -> str:
    """Cut at a closing bracket that matches nothing; close what a one-line suggestion opened.

    A closer may close a bracket the prefix left open (``foo(`` + ``x)``), unless the text
    after the cursor already closes that bracket. Brackets the suggestion opens and leaves
    open are closed at its end when it is a single line and the rest of the cursor line
    does not close them already.
    """
    own: list[str] = []
    outer = list(ctx.open_brackets)
    del outer[len(outer) - _closed_by(ctx.line_suffix + "\n" + ctx.next_lines, outer) :]
    cut = len(text)
    for index, ch in _code_chars_indexed(text):
        if ch in OPENERS:
            own.append(ch)
        elif ch in CLOSERS:
            want = CLOSERS[ch]
            if own:
                if own[-1] != want:
                    cut = index
                    break
                own.pop()
            elif outer and outer[-1] == want:
                outer.pop()
            else:
                cut = index
                break
    if cut < len(text):
        return text[:cut].rstrip()
    if single_line and own:
        closers = "".join(OPENERS[ch] for ch in reversed(own))
        if not ctx.line_suffix.strip().startswith(closers):
            text += closers
    return text


def _closed_by(suffix: str, outer: list[str]) -> int:
    """How many of the prefix's open brackets (innermost last) ``suffix`` closes."""
    own = 0
    closed = 0
    for ch in _code_chars(suffix):
        if ch in OPENERS:
            own += 1
        elif ch in CLOSERS:
            if own:
                own -= 1
            elif closed < len(outer):
                closed += 1
    return closed


def strip_trailing_blank_lines(text: str) -> str:
    """Drop whitespace-only lines at the end of a suggestion."""
    return _TRAILING_BLANK.sub("", text)


def _code_chars(text: str) -> str:
    return "".join(ch for _, ch in _code_chars_indexed(text))


def _code_chars_indexed(text: str) -> list[tuple[int, str]]:
    """Characters outside string literals and line comments, with their indices."""
    out: list[tuple[int, str]] = []
    quote = ""
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = ""
                continue
            if ch == "\n" and len(quote) == 1:
                quote = ""
            i += 1
            continue
        if ch in "\"'`":
            triple = text[i : i + 3]
            quote = triple if triple in ('"""', "'''") else ch
            i += len(quote)
            continue
        if ch == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        out.append((i, ch))
        i += 1
    return out


def heal_prefix(prefix: str) -> tuple[str, str]:
    """Move trailing whitespace out of the prompt; returns (prompt prefix, removed text).

    A prompt that ends in indentation or a lone space ends inside what would be a token
    of the model's own output (byte-level BPE groups spaces with the next word), and the
    model then continues badly. When the cursor line is only indentation, the line break
    before it goes too: the model writes the break and the indentation itself, and the
    engine's dedent stop measures the line above (the block the cursor is in).
    """
    head, newline, line = prefix.rpartition("\n")
    if newline and line and not line.strip(" \t"):
        return head, "\n" + line
    stripped = prefix.rstrip(" \t")
    return stripped, prefix[len(stripped) :]


def unheal(text: str, removed: str) -> str:
    """Drop from the model's text what :func:`heal_prefix` removed (the user has it)."""
    if not removed or text.startswith(removed):
        return text[len(removed) :]
    if removed.startswith("\n"):
        if not text.startswith("\n"):
            return ""  # it continued the line above the cursor: nothing to insert here
        text = text.lstrip("\n")
    indent = removed.lstrip("\n")
    lead = text[: len(text) - len(text.lstrip(" \t"))]
    return text[len(indent) :] if lead.startswith(indent) else text[len(lead) :]
