"""Infilling tasks cut from real source files: single lines and random spans.

The same sources, settings and seed give the same tasks on every machine: files are
visited in sorted order and each file draws from its own generator seeded by
``seed`` and its relative path.
"""

from __future__ import annotations

import gzip
import json
import os
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from llamacode.training.evaluation.data import read_jsonl
from llamacode.training.evaluation.errors import DataFormatError

LANGUAGES = {
    ".py": "python",
    ".js": "javascript",
    ".mjs": "javascript",
    ".ts": "typescript",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".java": "java",
    ".go": "go",
    ".rs": "rust",
    ".rb": "ruby",
    ".lua": "lua",
    ".sh": "shell",
    ".cs": "csharp",
    ".php": "php",
    ".kt": "kotlin",
    ".swift": "swift",
    ".scala": "scala",
}
KINDS = ("single-line", "span")


@dataclass(frozen=True)
class FimTask:
    """One infilling task: the model sees prefix and suffix and must write ``middle``."""

    task_id: str
    language: str
    kind: str
    path: str
    prefix: str
    middle: str
    suffix: str


@dataclass
class TaskBuildConfig:
    """How tasks are cut (the CLI flags mirror these)."""

    seed: int = 0
    per_file: int = 2
    kinds: tuple[str, ...] = KINDS
    max_tasks: int | None = None
    context_chars: int = 2000
    min_line_chars: int = 10
    min_span_chars: int = 8
    max_span_chars: int = 160
    max_file_bytes: int = 200_000

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def source_files(roots: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """(file, path relative to its root) for every source file, sorted, hidden dirs skipped."""
    found: list[tuple[Path, str]] = []
    for root in map(Path, roots):
        if root.is_file():
            found.append((root, root.name))
            continue
        if not root.is_dir():
            raise DataFormatError(f"source path not found: {root}")
        for dirpath, dirnames, filenames in os.walk(root.resolve()):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__pycache__")))
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.suffix in LANGUAGES:
                    found.append((path, path.relative_to(root.resolve().parent).as_posix()))
    return sorted(found, key=lambda item: item[1])


def clip_context(prefix: str, suffix: str, chars: int) -> tuple[str, str]:
    """Keep ``chars`` of context each side, cut at line boundaries."""
    if len(prefix) > chars:
        cut = prefix.find("\n", len(prefix) - chars)
        prefix = prefix[cut + 1 :] if cut != -1 else prefix[-chars:]
    if len(suffix) > chars:
        cut = suffix.rfind("\n", 0, chars)
        suffix = suffix[: cut + 1] if cut > 0 else suffix[:chars]
    return prefix, suffix


def _single_line_tasks(text: str, rng: random.Random, n: int, config: TaskBuildConfig):
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    candidates = [
        i
        for i, line in enumerate(lines)
        if len(line.strip()) >= config.min_line_chars and not line.lstrip().startswith("#")
    ]
    for i in sorted(rng.sample(candidates, min(n, len(candidates)))):
        line = lines[i].rstrip("\r\n")
        indent = len(line) - len(line.lstrip())
        cursor = starts[i] + indent
        end = starts[i] + len(line)
        yield cursor, text[cursor:end], end


def _span_tasks(text: str, rng: random.Random, n: int, config: TaskBuildConfig):
    if len(text) <= config.min_span_chars + 2:
        return
    spans = []
    for _ in range(n):
        length = rng.randint(config.min_span_chars, min(config.max_span_chars, len(text) - 2))
        start = rng.randint(1, len(text) - length - 1)
        if text[start : start + length].strip():
            spans.append((start, start + length))
    for start, end in sorted(spans):
        yield start, text[start:end], end


def build_tasks(
    roots: Sequence[str | Path], config: TaskBuildConfig | None = None
) -> list[FimTask]:
    """Cut tasks from every source file under ``roots``."""
    return tasks_from_files(source_files(roots), config)


def tasks_from_files(
    files: Iterable[tuple[Path, str]], config: TaskBuildConfig | None = None
) -> list[FimTask]:
    """Cut tasks from ``files``: (file, the path the prompt names it by)."""
    config = config or TaskBuildConfig()
    unknown = set(config.kinds) - set(KINDS)
    if unknown:
        raise DataFormatError(f"unknown task kind(s) {sorted(unknown)}; choose from {KINDS}")
    tasks: list[FimTask] = []
    for path, rel in files:
        if path.stat().st_size > config.max_file_bytes:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        language = LANGUAGES[path.suffix]
        rng = random.Random(f"{config.seed}:{rel}")
        for kind in config.kinds:
            cutter = _single_line_tasks if kind == "single-line" else _span_tasks
            for n, (start, middle, end) in enumerate(cutter(text, rng, config.per_file, config)):
                prefix, suffix = clip_context(text[:start], text[end:], config.context_chars)
                tasks.append(
                    FimTask(f"{rel}:{kind}:{n}", language, kind, rel, prefix, middle, suffix)
                )
    if config.max_tasks is not None and len(tasks) > config.max_tasks:
        keep = sorted(random.Random(config.seed).sample(range(len(tasks)), config.max_tasks))
        tasks = [tasks[i] for i in keep]
    return tasks


def write_tasks(tasks: Iterable[Any], path: str | Path) -> Path:
    """Write task dataclasses as JSON Lines (gzipped when the name ends in .gz), byte-for-byte
    stable."""
    path = Path(path)
    body = "".join(json.dumps(asdict(t), ensure_ascii=False, sort_keys=True) + "\n" for t in tasks)
    data = body.encode("utf-8")
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def load_tasks(path: str | Path) -> list[FimTask]:
    fields = ("task_id", "language", "kind", "path", "prefix", "middle", "suffix")
    tasks = []
    for i, row in enumerate(read_jsonl(path), 1):
        missing = [f for f in fields if not isinstance(row.get(f), str)]
        if missing:
            raise DataFormatError(f"{path} row {i}: missing text field(s) {', '.join(missing)}")
        tasks.append(FimTask(*(row[f] for f in fields)))
    if not tasks:
        raise DataFormatError(f"{path} holds no tasks")
    return tasks
