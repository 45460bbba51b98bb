"""Task files: JSON Lines, plain or gzipped, checked field by field.

HumanEval-infilling rows have ``task_id, prompt, suffix, canonical_solution, test,
entry_point``. Prefix-completion rows are HumanEval-style (``prompt, test, entry_point``)
or MBPP-style (``prompt`` or ``text``, ``test_list``, optional ``test_setup_code``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llamacode.training.evaluation.errors import DataFormatError


@dataclass(frozen=True)
class FimProblem:
    """One infilling problem: the model writes what goes between prompt and suffix."""

    task_id: str
    prompt: str
    suffix: str
    canonical_solution: str
    test: str
    entry_point: str


@dataclass(frozen=True)
class CodeProblem:
    """One prefix-completion problem; ``test`` ends by calling the tests it defines."""

    task_id: str
    prompt: str
    test: str
    canonical_solution: str = ""


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a ``.jsonl`` or ``.jsonl.gz`` file (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"task file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataFormatError(f"{path}:{number}: not valid JSON ({exc.msg})") from exc
                if not isinstance(row, dict):
                    raise DataFormatError(f"{path}:{number}: each line must be a JSON object")
                yield row
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"cannot read {path}: {exc}") from exc


def _fields(row: dict[str, Any], names: tuple[str, ...], where: str) -> list[str]:
    missing = [n for n in names if not isinstance(row.get(n), str)]
    if missing:
        raise DataFormatError(f"{where}: missing text field(s) {', '.join(missing)}")
    return [row[n] for n in names]


def load_fim_problems(path: str | Path) -> list[FimProblem]:
    """HumanEval-infilling problems from ``path``."""
    names = ("task_id", "prompt", "suffix", "canonical_solution", "test", "entry_point")
    problems = [
        FimProblem(*_fields(row, names, f"{path} row {i}"))
        for i, row in enumerate(read_jsonl(path), 1)
    ]
    if not problems:
        raise DataFormatError(f"{path} holds no problems")
    return problems


def mbpp_prompt(text: str, first_test: str) -> str:
    """An MBPP description as a code prompt: the task and one example test in a docstring."""
    return f'"""\n{text.strip()}\n{first_test.strip()}\n"""\n'


def load_code_problems(path: str | Path) -> list[CodeProblem]:
    """HumanEval- or MBPP-style prefix-completion problems from ``path``."""
    problems = []
    for i, row in enumerate(read_jsonl(path), 1):
        where = f"{path} row {i}"
        task_id = str(row.get("task_id", i))
        if isinstance(row.get("test_list"), list):
            prompt = row.get("prompt")
            if not isinstance(prompt, str):
                if not isinstance(row.get("text"), str) or not row["test_list"]:
                    raise DataFormatError(
                        f"{where}: an MBPP-style row needs 'prompt', or 'text' and tests"
                    )
                prompt = mbpp_prompt(row["text"], str(row["test_list"][0]))
            setup = row.get("test_setup_code") or ""
            test = "\n".join([setup, *map(str, row["test_list"])]) + "\n"
            solution = row.get("code") or row.get("canonical_solution") or ""
            problems.append(CodeProblem(task_id, prompt, test, str(solution)))
            continue
        prompt, test, entry_point = _fields(row, ("prompt", "test", "entry_point"), where)
        problems.append(
            CodeProblem(
                task_id,
                prompt,
                f"{test}\n\ncheck({entry_point})\n",
                str(row.get("canonical_solution", "")),
            )
        )
    if not problems:
        raise DataFormatError(f"{path} holds no problems")
    return problems
