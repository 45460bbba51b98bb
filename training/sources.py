"""Collecting source files from directories, by language.

A document is one file's text. Files that are not UTF-8, contain NUL bytes, or are larger
than a limit (generated or minified code) are skipped, as are hidden and vendored
directories.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llamacode.runtime.errors import ConfigError

LANGUAGE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "python": (".py", ".pyi"),
    "c": (".c", ".h"),
    "cpp": (".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx"),
    "rust": (".rs",),
    "go": (".go",),
    "java": (".java",),
    "javascript": (".js", ".mjs", ".cjs", ".jsx"),
    "typescript": (".ts", ".tsx"),
    "lua": (".lua",),
    "shell": (".sh", ".bash"),
    "markdown": (".md",),
    "toml": (".toml",),
}

SKIP_DIRS = frozenset(
    {"node_modules", "__pycache__", ".git", ".hg", ".svn", ".venv", "venv", "build", "dist"}
)


@dataclass(frozen=True)
class Document:
    """One source file's text and where it came from."""

    path: str
    language: str
    text: str


def extensions_for(languages: Iterable[str]) -> dict[str, str]:
    """Map each file extension to its language; unknown language names are an error."""
    mapping: dict[str, str] = {}
    for language in languages:
        if language not in LANGUAGE_EXTENSIONS:
            known = ", ".join(sorted(LANGUAGE_EXTENSIONS))
            raise ConfigError(f"unknown language {language!r}; known languages: {known}")
        for ext in LANGUAGE_EXTENSIONS[language]:
            mapping[ext] = language
    return mapping


def collect(
    roots: Iterable[str | Path],
    languages: Iterable[str] = ("python",),
    *,
    max_bytes: int = 1_000_000,
) -> Iterator[Document]:
    """Yield the documents under ``roots`` in a stable (sorted) order."""
    by_ext = extensions_for(languages)
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise ConfigError(f"source directory {root} does not exist")
        paths = [root] if root.is_file() else _walk(root)
        for path in paths:
            language = by_ext.get(path.suffix)
            if language is None:
                continue
            text = read_text(path, max_bytes)
            if text is not None:
                yield Document(str(path), language, text)


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
        found.extend(Path(dirpath, name) for name in sorted(filenames))
    return found


def read_text(path: Path, max_bytes: int) -> str | None:
    """A source file's text, or None for one too large, binary, not UTF-8 or blank."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.strip() else None
