"""Prompt windows and extra chunks (pure functions; a word count stands in for a tokenizer)."""

from __future__ import annotations

from llamacode.runtime.context import (
    Budget,
    ExtraContext,
    LineTokenCounter,
    build_window,
    comment_block,
    file_header,
    fit_context,
)
from llamacode.runtime.types import ContextFile


def words(text: str) -> int:
    return len(text.split())


def numbered(n: int, words_per_line: int = 4) -> str:
    return "".join(" ".join(f"w{i}" for _ in range(words_per_line)) + "\n" for i in range(n))


def test_everything_fits_when_the_file_is_small():
    w = build_window("a b\nc d\ne", "f\ng h\n", Budget(100, 100, 0), words)
    assert (w.prefix, w.suffix) == ("a b\nc d\ne", "f\ng h\n")
    assert w.prefix_start_line == 0


def test_prefix_window_respects_the_budget_and_starts_on_a_grid_line():
    text = numbered(200)
    w = build_window(text, "", Budget(prefix=100, suffix=10, extra=0), words, step=16)
    assert w.prefix_tokens <= 100
    assert words(w.prefix) == w.prefix_tokens
    assert w.prefix_start_line % 16 == 0
    assert text.endswith(w.prefix)


def test_prefix_start_stays_put_while_typing():
    text = numbered(200)
    starts = set()
    typed = ""
    for ch in "result = compute(a, b) + other":
        typed += ch
        w = build_window(text + typed, "\n", Budget(prefix=300, suffix=10, extra=0), words)
        starts.add(w.prefix_start_line)
        assert w.prefix.endswith(typed)
    assert len(starts) == 1


def test_prefix_start_moves_in_coarse_steps_as_lines_are_added():
    starts = []
    for n in range(100, 200):
        w = build_window(numbered(n), "", Budget(prefix=200, suffix=10, extra=0), words, step=16)
        starts.append(w.prefix_start_line)
    assert len(set(starts)) <= 100 // 16 + 2
    assert all(s % 16 == 0 for s in starts)
    assert starts == sorted(starts)


def test_suffix_window_ends_on_whole_lines_within_budget():
    suffix = "rest of line\n" + numbered(100)
    w = build_window("x = ", suffix, Budget(prefix=100, suffix=50, extra=0), words, step=4)
    assert w.suffix.startswith("rest of line\n")
    assert w.suffix_tokens <= 50
    assert w.suffix_lines % 4 == 0
    assert suffix.startswith(w.suffix)


def test_huge_single_line_is_cut_to_its_tail():
    line = "tok " * 1000
    w = build_window(line, "", Budget(prefix=100, suffix=10, extra=0), words)
    assert words(w.prefix) <= 100
    assert line.endswith(w.prefix)


def test_budget_split_gives_most_to_the_prefix():
    b = Budget.split(1000, with_extra=True)
    assert b.prefix + b.suffix + b.extra == 1000
    assert b.prefix > b.suffix and b.extra > 0
    assert Budget.split(1000, with_extra=False).extra == 0


def test_line_counter_memoizes():
    calls = []

    def count(text: str) -> int:
        calls.append(text)
        return words(text)

    counter = LineTokenCounter(count)
    assert counter("a b c\n") == 3
    assert counter("a b c\n") == 3
    assert len(calls) == 1


def lines_of(text: str) -> list[str]:
    return text.splitlines(True)


def test_extra_chunks_come_from_other_files_oldest_first():
    ring = ExtraContext(capacity=4, chunk_lines=8)
    ring.note("file:///a.py", lines_of("def a():\n    return 1\n"), 0)
    ring.note("file:///b.py", lines_of("def b():\n    return 2\n"), 0)
    chunks = ring.chunks_for("file:///c.py")
    assert [c.path for c in chunks] == ["/a.py", "/b.py"]
    assert chunks[0].text == "def a():\n    return 1\n"
    assert ring.chunks_for("file:///a.py") == (chunks[1],)


def test_near_duplicate_chunks_are_evicted():
    ring = ExtraContext(capacity=4, chunk_lines=8, similarity=0.7)
    body = "import os\nimport sys\n\ndef main():\n    print(os.getcwd())\n"
    ring.note("file:///a.py", lines_of(body), 0)
    ring.note("file:///copy_of_a.py", lines_of(body + "    return 0\n"), 0)
    assert len(ring) == 1
    assert ring.chunks_for("file:///other.py")[0].path == "/copy_of_a.py"


def test_ring_keeps_only_the_newest_chunks_and_budget_prefers_them():
    ring = ExtraContext(capacity=2, chunk_lines=4)
    for name in ("a", "b", "c"):
        ring.note(f"file:///{name}.js", lines_of(f"function {name}() {{ return '{name}'; }}\n"), 0)
    chunks = ring.chunks_for("file:///z.js")
    assert [c.path for c in chunks] == ["/b.js", "/c.js"]
    cost = words(chunks[1].path) + words(chunks[1].text) + 2
    assert fit_context(chunks, cost, words) == (chunks[1],)
    assert fit_context(chunks, 1000, words) == chunks


def test_editing_inside_a_chunk_updates_it_in_place():
    ring = ExtraContext(capacity=4, chunk_lines=8)
    ring.note("file:///a.py", lines_of("x = 1\ny = 2\n"), 0)
    ring.note("file:///b.py", lines_of("z = 3\n"), 0)
    ring.note("file:///a.py", lines_of("x = 10\ny = 2\n"), 0)
    chunks = ring.chunks_for("file:///c.py")
    assert chunks[0] == ContextFile("/a.py", "x = 10\ny = 2\n")


def test_models_without_file_tokens_get_comment_headed_pieces():
    assert comment_block(ContextFile("src/a.py", "x = 1\n")) == "# a.py\nx = 1\n"


def test_file_header_uses_the_language_comment():
    assert file_header("file:///x/y.py") == "# y.py\n"
    assert file_header("file:///x/y.ts") == "// y.ts\n"
    assert file_header("file:///x/q.sql") == "-- q.sql\n"
