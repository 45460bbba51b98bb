"""Where a suggestion ends: every stop and trim rule of the suggestion pipeline, once.

Pure functions on strings (no model, no LSP): the rules a user notices when they are
missing. A suggestion ends at the end of the line when only one line is wanted; where the
model leaves the cursor's block; where its output runs into the text after the cursor; at a
markdown fence (instruction-tuned models like to explain themselves after the code). It
never repeats what already follows the cursor, its brackets match, and it has no trailing
blank lines. Control tokens end generation in the engine, before any text is made.

:class:`Trim` applies the rules twice: while the model generates (so it stops as soon as
the suggestion is over) and once on the final text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llamacode.runtime.stops import indent_width

OPENERS = {"(": ")", "[": "]", "{": "}"}
CLOSERS = {v: k for k, v in OPENERS.items()}
_BLOCK_ENDS = ("}", ")", "]", "end", "fi", "done", "esac")
_TRAILING_BLANK = re.compile(r"(?:\n[ \t]*)+\Z")
_FENCE = "```"
_OPENS = (":", "{", "(", "[")


@dataclass(frozen=True)
class CursorContext:
    """What post-processing needs to know about the text around the cursor."""

    line_prefix: str  # the cursor line up to the cursor
    line_suffix: str  # the cursor line after the cursor, without its line break
    next_lines: str  # the text after the cursor line (may be empty)
    open_brackets: str  # brackets opened before the cursor and still open, innermost last
    previous_line: str = ""  # the last non-blank line before the cursor line

    @classmethod
    def from_text(cls, prefix: str, suffix: str) -> CursorContext:
        """Build from the text before and after the cursor (``\\n`` line breaks)."""
        head, _, line_prefix = prefix.rpartition("\n")
        line_suffix, _, next_lines = suffix.partition("\n")
        previous = next((ln for ln in reversed(head[-4000:].split("\n")) if ln.strip()), "")
        return cls(line_prefix, line_suffix, next_lines, open_brackets(prefix[-4000:]), previous)


def code_right_of_cursor(ctx: CursorContext) -> bool:
    """True when the cursor line has something other than whitespace after the cursor."""
    return bool(ctx.line_suffix.strip())


@dataclass(frozen=True)
class Trim:
    """The rules for one request: ``cut`` while generating, ``finish`` at the end.

    Both take the model's raw text, which may start with what :func:`heal_prefix` took out
    of the prompt (the user has it already); ``finish`` returns the text to insert.
    """

    ctx: CursorContext
    healed: str
    single_line: bool
    in_markdown: bool = False

    def cut(self, raw: str, final: bool) -> tuple[int, str] | None:
        """Where to end the raw text now and why, or None to go on generating."""
        text = unheal(raw, self.healed)
        found = early_cut(text, self.ctx, single_line=self.single_line, final=final,
                          fences=not self.in_markdown)  # fmt: skip
        if found is None:
            return None
        index, reason = found
        return len(raw) - len(text) + index, reason

    def finish(self, raw: str, *, complete: bool = True) -> str:
        """The suggestion to show ("" when nothing worth showing is left).

        ``complete`` is False when generation stopped at a limit (time, tokens) rather than
        at an end it chose: the unfinished last line is dropped, never shown cut.
        """
        text = unheal(raw, self.healed)
        if not complete:  # no rule ended it, so its last line is unfinished
            text = text.rpartition("\n")[0]
        return finish(text, self.ctx, single_line=self.single_line, fences=not self.in_markdown)


def early_cut(
    text: str, ctx: CursorContext, *, single_line: bool, final: bool, fences: bool = True
) -> tuple[int, str] | None:
    """The first place the suggestion is over, judged on complete lines (all of them when
    ``final``): a first line that is the next line of the file, the end of the line when one
    is wanted (unless it opens a block whose body is missing), a markdown fence, a line that
    leaves the block, a line that repeats the next line of the file."""
    following = _next_code_line(ctx)
    lines = text.split("\n")
    first_done = final or len(lines) > 1
    if first_done and following and (ctx.line_prefix + lines[0]).strip() == following:
        return 0, "suffix"  # it wrote the next line of the file, not what goes here
    if single_line and len(lines) > 1 and not _needs_body(ctx, lines[0]):
        return len(lines[0]), "newline"
    base, opens_block = _block_of(ctx, lines[0])
    offset = len(lines[0]) + 1
    for number, line in enumerate(lines[1:], start=2):
        # The last line may still grow; its indentation is known once it has a character.
        complete = final or number < len(lines)
        stripped = line.strip()
        if fences and stripped.startswith(_FENCE):
            return offset - 1, "fence"
        if stripped:
            width = indent_width(line)
            if width < base:
                return offset - 1, "dedent"
            if opens_block and width == base:
                if not stripped.startswith(_BLOCK_ENDS):
                    return offset - 1, "dedent"
                if complete:
                    return offset + len(line), "dedent"
            if complete and following and stripped == following:
                return offset - 1, "suffix"
        offset += len(line) + 1
    if fences and lines[0].lstrip().startswith(_FENCE) and (final or len(lines) > 1):
        return 0, "fence"
    return None


def _block_of(ctx: CursorContext, first_line: str) -> tuple[int, bool]:
    """The indentation of the cursor's block and whether the suggestion's first line opens
    a new block there."""
    cursor_line = ctx.line_prefix + ctx.line_suffix
    if cursor_line.strip():
        base = indent_width(cursor_line)
    else:  # a blank line: the suggestion's own first line says which block it writes in
        base = indent_width(ctx.line_prefix + (first_line if first_line.strip() else ""))
    opens_block = (ctx.line_prefix + first_line).rstrip().endswith(_OPENS)
    return base, opens_block


def _needs_body(ctx: CursorContext, first_line: str) -> bool:
    """Whether the suggestion's first line opens a block whose body is not below the cursor
    (one line would leave the code broken, so the body may follow)."""
    line = ctx.line_prefix + first_line
    if code_right_of_cursor(ctx) or not line.rstrip().endswith((":", "{")):
        return False
    below = next((ln for ln in ctx.next_lines.split("\n") if ln.strip()), None)
    return below is None or indent_width(below) <= indent_width(line)


def _next_code_line(ctx: CursorContext) -> str:
    """The next non-blank line after the cursor line, stripped ("" when none or trivial)."""
    line = next((ln.strip() for ln in ctx.next_lines.split("\n") if ln.strip()), "")
    return line if len(line) > 1 else ""


def wants_single_line(ctx: CursorContext, policy: str) -> bool:
    """Apply the line policy: ``single``, ``multi`` or ``auto``.

    ``auto`` wants one line in the middle of code: when the cursor line has code right of
    the cursor, or when the cursor is on a blank line and the code after it carries on in the
    same block (so the user is adding a line, not writing the block). At the end of a block,
    in an empty block, or at the end of the file, several lines are welcome.
    """
    if policy == "single":
        return True
    if policy == "multi":
        return False
    if code_right_of_cursor(ctx):
        return True
    if (ctx.line_prefix + ctx.line_suffix).strip():
        return False  # code left of the cursor only: the line may go on into a block
    following = next((ln for ln in ctx.next_lines.split("\n") if ln.strip()), None)
    if following is None or not ctx.previous_line:
        return False
    above, below = indent_width(ctx.previous_line), indent_width(following)
    if ctx.previous_line.rstrip().endswith(_OPENS):
        return below > above  # the new block already has a body below the cursor
    return below >= above


def finish(text: str, ctx: CursorContext, *, single_line: bool, fences: bool = True) -> str:
    """All rules in order; returns "" when nothing worth showing is left."""
    text = text.replace("\r\n", "\n")
    found = early_cut(text, ctx, single_line=single_line, final=True, fences=fences)
    if found is not None:
        text = text[: found[0]]
    text = drop_suffix_repeat(text, ctx)
    text = balance_brackets(text, ctx, single_line=single_line)
    text = strip_trailing_blank_lines(text)
    return text if text.strip() else ""


def drop_suffix_repeat(text: str, ctx: CursorContext) -> str:
    """Drop a tail of the last line that repeats the start of the rest of the cursor line.

    Only when that repeated part is the whole rest of the line, or punctuation such as
    closing brackets, so an identifier is never cut in half. (A whole line that repeats the
    next line of the file is cut earlier, by :func:`early_cut`.)
    """
    rest = ctx.line_suffix.strip()
    if not rest:
        return text
    lines = text.split("\n")
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
    """Move trailing spaces and tabs out of the prompt; returns (prompt prefix, removed).

    A prompt that ends in indentation or a lone space ends inside what would be a token of
    the model's own output (byte-level BPE groups spaces with the next word), and the model
    then continues badly: in SPM, Qwen2.5-Coder answers an indented empty line with " with"
    (one space too many). A line break stays: after it the model writes the indentation
    itself, while without it the model continues the line above instead.
    """
    stripped = prefix.rstrip(" \t")
    return stripped, prefix[len(stripped) :]


def unheal(text: str, removed: str) -> str:
    """Drop from the model's text what :func:`heal_prefix` removed (the user has it)."""
    if text.startswith(removed):
        return text[len(removed) :]
    lead = text[: len(text) - len(text.lstrip(" \t"))]
    return text[len(removed) :] if lead.startswith(removed) else text[len(lead) :]
