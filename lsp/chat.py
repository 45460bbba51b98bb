"""Chat and the explain / fix / docstring commands: prompts in, text edits out.

Pure functions: the server validates requests with them, builds the conversation the
engine answers, and turns answers into edits at the selection.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lsprotocol import types

SYSTEM_PROMPT = (
    "You are llamacode, a concise coding assistant inside a code editor. "
    "Answer with short explanations and code in fenced code blocks."
)
COMMANDS = ("explain", "fix", "docstring")
_ROLES = ("system", "user", "assistant")
_HASH_COMMENT = {"python", "shellscript", "ruby", "perl", "r", "yaml", "toml", "julia", "elixir"}
_DASH_COMMENT = {"lua", "sql", "haskell", "elm", "ada"}
_FENCE = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


class InvalidRequest(ValueError):
    """A chat request or command whose arguments are not what the server accepts."""


@dataclass(frozen=True)
class Selection:
    """A validated ``{textDocument: {uri}, range}`` argument."""

    uri: str
    range: types.Range | None


def parse_messages(raw: Any) -> list[dict[str, str]]:
    """Validate ``messages``: a non-empty list of ``{role, content}`` ending with the user."""
    if not isinstance(raw, list) or not raw:
        raise InvalidRequest("messages must be a non-empty list of {role, content} objects")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, Mapping):
            raise InvalidRequest(f"messages[{i}] must be an object with role and content")
        role, content = m.get("role"), m.get("content")
        if role not in _ROLES or not isinstance(content, str):
            raise InvalidRequest(
                f"messages[{i}] needs role (system, user or assistant) and string content"
            )
        out.append({"role": role, "content": content})
    if out[-1]["role"] != "user":
        raise InvalidRequest("the last message must come from the user")
    return out


def parse_selection(raw: Any, *, need_range: bool) -> Selection:
    """Validate ``{textDocument: {uri}, range?}`` (camelCase, as LSP sends it)."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest("expected an object {textDocument: {uri}, range}")
    doc = raw.get("textDocument")
    uri = doc.get("uri") if isinstance(doc, Mapping) else None
    if not isinstance(uri, str) or not uri:
        raise InvalidRequest("textDocument.uri must be a string")
    rng = raw.get("range")
    if rng is None:
        if need_range:
            raise InvalidRequest("range is required: select the code first")
        return Selection(uri, None)
    return Selection(uri, _parse_range(rng))


def _parse_range(raw: Any) -> types.Range:
    if not isinstance(raw, Mapping):
        raise InvalidRequest("range must be {start: {line, character}, end: {line, character}}")
    ends = []
    for key in ("start", "end"):
        pos = raw.get(key)
        if not isinstance(pos, Mapping):
            raise InvalidRequest(f"range.{key} must be {{line, character}}")
        line, char = pos.get("line"), pos.get("character")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in (line, char)):
            raise InvalidRequest(f"range.{key} needs non-negative integer line and character")
        ends.append(types.Position(line=line, character=char))
    start, end = ends
    if (end.line, end.character) < (start.line, start.character):
        raise InvalidRequest("range.end comes before range.start")
    return types.Range(start=start, end=end)


def with_context(
    messages: list[dict[str, str]], context: str | None, language: str, label: str
) -> list[dict[str, str]]:
    """Prepend the system prompt and put the editor context into the last user message."""
    out = [] if messages[0]["role"] == "system" else [{"role": "system", "content": SYSTEM_PROMPT}]
    out.extend(dict(m) for m in messages)
    if context:
        last = out[-1]
        last["content"] = f"{label}:\n```{language}\n{context}\n```\n\n{last['content']}"
    return out


def command_messages(command: str, code: str, language: str) -> list[dict[str, str]]:
    """The conversation for one of :data:`COMMANDS` on ``code``."""
    asks = {
        "explain": "Explain briefly what this code does.",
        "fix": "Fix the bugs in this code. Reply with the corrected code in one code block.",
        "docstring": (
            "Write a short documentation comment for this code: what it does, its "
            "parameters and what it returns. Reply with the text only, no code."
        ),
    }
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": f"```{language}\n{code}\n```\n\n{asks[command]}"},
    ]


def extract_code(answer: str) -> str:
    """The first fenced code block of an answer, or the whole answer without fences."""
    match = _FENCE.search(answer)
    code = match.group(1) if match else answer
    return code.strip("\n")


def comment_marker(language: str) -> str:
    """The line-comment marker of a language id."""
    if language in _HASH_COMMENT:
        return "#"
    if language in _DASH_COMMENT:
        return "--"
    return "//"


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _prose_lines(answer: str, width: int = 88) -> list[str]:
    text = re.sub(r"```.*?(```|\Z)", "", answer, flags=re.DOTALL).strip()
    out: list[str] = []
    for paragraph in text.splitlines():
        words = paragraph.split()
        line = ""
        for word in words:
            if line and len(line) + 1 + len(word) > width:
                out.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        out.append(line)
    while out and not out[-1]:
        out.pop()
    return out or [""]


def command_edits(
    command: str,
    answer: str,
    selection: types.Range,
    lines: Sequence[str],
    language: str,
    eol: str = "\n",
) -> list[types.TextEdit]:
    """Edits that apply a command's answer at the selection.

    explain: a comment block above the selection. fix: the selection replaced by the
    answer's code, indented like the selection. docstring: a Python docstring under the
    signature, elsewhere a comment block above the selection.
    """
    first = lines[selection.start.line] if selection.start.line < len(lines) else ""
    indent = _indent_of(first)
    above = types.Position(line=selection.start.line, character=0)
    if command == "fix":
        code = extract_code(answer)
        code_lines = code.split("\n")
        base = min((_indent_of(ln) for ln in code_lines if ln.strip()), key=len, default="")
        sel_indent = indent if selection.start.character == 0 else ""
        fixed = [sel_indent + ln[len(base) :] if ln.strip() else "" for ln in code_lines]
        return [types.TextEdit(range=selection, new_text=eol.join(fixed))]
    prose = _prose_lines(answer)
    if command == "docstring" and language == "python":
        for offset, line in enumerate(lines[selection.start.line : selection.end.line + 1]):
            if line.rstrip("\r\n").rstrip().endswith(":"):
                body = _indent_of(line) + "    "
                doc = [f'{body}"""{prose[0]}'] + [f"{body}{p}" if p else "" for p in prose[1:]]
                if len(prose) == 1:
                    doc[0] += '"""'
                else:
                    doc.append(f'{body}"""')
                at = types.Position(line=selection.start.line + offset + 1, character=0)
                return [types.TextEdit(range=types.Range(at, at), new_text=eol.join(doc) + eol)]
    mark = comment_marker(language)
    block = [f"{indent}{mark} {p}".rstrip() for p in prose]
    return [types.TextEdit(range=types.Range(above, above), new_text=eol.join(block) + eol)]
