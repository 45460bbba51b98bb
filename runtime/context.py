"""What the model sees: prefix and suffix windows measured in tokens, plus other files.

Windows move in coarse steps (their edges snap to whole lines on a grid of ``step``
lines), so while the user types the prompt's start stays byte-for-byte the same and the
engine can reuse its KV cache. Extra chunks come from other open or recently edited files;
they only change when another file changes, never while the user types in this one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote

from llamacode.runtime.types import ContextFile

CountTokens = Callable[[str], int]


@dataclass(frozen=True)
class Budget:
    """Token budgets for the three parts of a completion prompt."""

    prefix: int
    suffix: int
    extra: int

    @classmethod
    def split(cls, total: int, *, with_extra: bool) -> Budget:
        """Divide ``total`` prompt tokens: a quarter to extra chunks, a quarter of the rest
        to the suffix, the remainder to the prefix (what the cursor continues)."""
        total = max(total, 16)
        extra = total // 4 if with_extra else 0
        rest = total - extra
        suffix = rest // 4
        return cls(prefix=rest - suffix, suffix=suffix, extra=extra)


@dataclass(frozen=True)
class Window:
    """The text of the prompt windows and where they start and end in the document."""

    prefix: str
    suffix: str
    prefix_start_line: int  # first document line in the prefix window
    suffix_lines: int  # whole lines after the cursor line in the suffix window
    prefix_tokens: int
    suffix_tokens: int


class LineTokenCounter:
    """Counts tokens line by line with a memo, so a keystroke re-tokenizes one line.

    The sum of per-line counts is an estimate of the window's token count (BPE merges do
    not cross a line break in the tokenizers we serve, so the estimate is close).
    """

    def __init__(self, count: CountTokens, capacity: int = 50_000) -> None:
        self._count = count
        self._memo: dict[str, int] = {}
        self._capacity = capacity

    def __call__(self, line: str) -> int:
        cached = self._memo.get(line)
        if cached is not None:
            return cached
        if len(self._memo) >= self._capacity:
            self._memo.clear()
        value = self._count(line) if line else 0
        self._memo[line] = value
        return value


def build_window(
    prefix: str, suffix: str, budget: Budget, count_line: CountTokens, *, step: int = 16
) -> Window:
    """Choose the prefix and suffix windows around the cursor.

    The prefix window starts at a document line that is a multiple of ``step``: the
    first such line from which the rest of the prefix fits ``budget.prefix``. The suffix
    window ends after a multiple of ``step`` whole lines counted from the cursor line.
    Both edges therefore stay put while the user types at the cursor.
    """
    before = prefix.split("\n")
    cursor_part = before[-1]
    whole_lines = [line + "\n" for line in before[:-1]]
    used = count_line(cursor_part)
    if used > budget.prefix:
        keep = max(1, len(cursor_part) * budget.prefix // max(used, 1))
        text = cursor_part[-keep:]
        start_line = len(whole_lines)
        prefix_window = text
        used = count_line(text)
    else:
        first_fit = len(whole_lines)
        for index in range(len(whole_lines) - 1, -1, -1):
            cost = count_line(whole_lines[index])
            if used + cost > budget.prefix:
                break
            used += cost
            first_fit = index
        start_line = min(math.ceil(first_fit / step) * step, len(whole_lines))
        used -= sum(count_line(line) for line in whole_lines[first_fit:start_line])
        prefix_window = "".join(whole_lines[start_line:]) + cursor_part

    after = suffix.split("\n")
    rest_of_line = after[0]
    following = after[1:]
    suffix_used = count_line(rest_of_line)
    taken = 0
    for line in following:
        cost = count_line(line + "\n")
        if suffix_used + cost > budget.suffix:
            break
        suffix_used += cost
        taken += 1
    if taken < len(following):
        snapped = (taken // step) * step
        suffix_used -= sum(count_line(line + "\n") for line in following[snapped:taken])
        taken = snapped
    suffix_window = rest_of_line
    if following:
        suffix_window += "".join("\n" + line for line in following[:taken])
        if taken and taken < len(following):
            suffix_window += "\n"
    return Window(
        prefix=prefix_window,
        suffix=suffix_window,
        prefix_start_line=start_line,
        suffix_lines=taken,
        prefix_tokens=used,
        suffix_tokens=suffix_used,
    )


_LINE_COMMENTS = {
    "#": (".py", ".sh", ".rb", ".pl", ".r", ".toml", ".yaml", ".yml", ".jl", ".ex", ".nim"),
    "--": (".lua", ".sql", ".hs", ".elm", ".ada"),
    ";": (".lisp", ".clj", ".el", ".scm", ".asm"),
}


def file_header(path: str) -> str:
    """A one-line comment naming the file, in the file's own comment syntax."""
    name = path.split("://", 1)[-1]
    suffix = PurePosixPath(name).suffix.lower()
    mark = next((m for m, exts in _LINE_COMMENTS.items() if suffix in exts), "//")
    return f"{mark} {PurePosixPath(name).name}\n"


@dataclass
class _Chunk:
    uri: str
    start: int
    end: int
    text: str
    lines: frozenset[str]


class ExtraContext:
    """A small ring buffer of snippets from other open or recently edited files.

    A snippet is ``chunk_lines`` lines around the last edit in a file, snapped to a grid
    of half a chunk. A new snippet evicts any snippet that is nearly the same text (line
    set Jaccard similarity of ``similarity`` or more), and the oldest leaves when the ring
    is full.
    """

    def __init__(self, capacity: int = 4, chunk_lines: int = 32, similarity: float = 0.7) -> None:
        self.capacity = capacity
        self.chunk_lines = chunk_lines
        self.similarity = similarity
        self._chunks: list[_Chunk] = []

    def __len__(self) -> int:
        return len(self._chunks)

    def note(self, uri: str, lines: Sequence[str], line: int) -> None:
        """Record that ``uri`` (whose text is ``lines``) was opened or edited at ``line``."""
        for chunk in self._chunks:
            if chunk.uri == uri and chunk.start <= line < chunk.end:
                end = min(chunk.start + self.chunk_lines, len(lines))
                chunk.end = max(end, chunk.start + 1)
                chunk.text, chunk.lines = self._render(uri, lines, chunk.start, chunk.end)
                return
        half = max(1, self.chunk_lines // 2)
        start = max(0, (line - half // 2) // half * half)
        end = min(start + self.chunk_lines, len(lines))
        if end <= start:
            return
        text, line_set = self._render(uri, lines, start, end)
        if not any(s.strip() for s in line_set):
            return
        self._chunks = [
            c
            for c in self._chunks
            if _jaccard(c.lines, line_set) < self.similarity
            and not (c.uri == uri and c.start == start)
        ]
        self._chunks.append(_Chunk(uri, start, end, text, line_set))
        del self._chunks[: max(0, len(self._chunks) - self.capacity)]

    def chunks_for(self, uri: str) -> tuple[ContextFile, ...]:
        """Snippets of files other than ``uri``, oldest first (the pipeline fits them to
        its budget, newest first)."""
        return tuple(
            ContextFile(_display_path(c.uri), c.text) for c in self._chunks if c.uri != uri
        )

    def _render(
        self, uri: str, lines: Sequence[str], start: int, end: int
    ) -> tuple[str, frozenset[str]]:
        body = [ln.rstrip("\r\n") for ln in lines[start:end]]
        return "\n".join(body) + "\n", frozenset(ln.strip() for ln in body if ln.strip())


def fit_context(
    files: Sequence[ContextFile], budget: int, count: CountTokens
) -> tuple[ContextFile, ...]:
    """The files that fit ``budget`` tokens: the newest (last) win, the order is kept so a
    new piece only changes the end of this part of the prompt."""
    picked: list[ContextFile] = []
    used = 0
    for piece in reversed(files):
        cost = count(piece.path) + count(piece.text) + 2
        if used + cost > budget:
            continue
        used += cost
        picked.append(piece)
    return tuple(reversed(picked))


def comment_block(piece: ContextFile) -> str:
    """A piece headed by a comment naming its file (for models with no file tokens)."""
    return file_header(piece.path) + piece.text


def _display_path(uri: str) -> str:
    """A URI as the path a prompt names it by (``file:///a/b.py`` -> ``/a/b.py``)."""
    return unquote(uri.split("://", 1)[-1]) if "://" in uri else uri


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)
