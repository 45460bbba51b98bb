"""HumanEval single-line infilling tasks, as an editor sees them.

From each HumanEval problem (``task_id, prompt, canonical_solution, test, entry_point``)
every non-blank line of the canonical solution becomes one task: the line is removed and
the cursor sits at the start of the empty line it leaves, with the code before it as prefix
and the code after it as suffix. The model's suggestion there is run with the problem's
tests. This is the construction of the single-line infilling benchmark the Code Llama paper
reports (1,033 tasks); ``every`` keeps a deterministic subset.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from llamacode.training.evaluation.data import FimProblem, read_jsonl
from llamacode.training.evaluation.errors import DataFormatError

FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def single_line_problems(rows: Iterable[dict[str, object]]) -> list[FimProblem]:
    """One task per non-blank solution line, in file and line order."""
    problems = []
    for number, row in enumerate(rows, 1):
        missing = [f for f in FIELDS if not isinstance(row.get(f), str)]
        if missing:
            raise DataFormatError(f"row {number}: missing text field(s) {', '.join(missing)}")
        task_id, prompt, solution, test, entry_point = (str(row[f]) for f in FIELDS)
        lines = solution.splitlines(keepends=True)
        for index, line in enumerate(lines):
            if not line.strip():
                continue
            before = prompt + "".join(lines[:index])
            after = "".join(lines[index + 1 :])
            middle = line.rstrip("\r\n")
            problems.append(
                FimProblem(
                    f"{task_id}/L{index}",
                    before,
                    line[len(middle) :] + after,
                    middle,
                    test,
                    entry_point,
                )
            )
    return problems


def build_single_line(source: str | Path, every: int = 1, start: int = 0) -> list[FimProblem]:
    """The tasks of a HumanEval file (``.jsonl`` or ``.jsonl.gz``): every ``every``-th one
    from the ``start``-th (so disjoint subsets differ in ``start``)."""
    if every < 1 or not 0 <= start < every:
        raise DataFormatError("--every must be at least 1 and --start in 0 .. every-1")
    problems = single_line_problems(read_jsonl(source))
    if not problems:
        raise DataFormatError(f"{source} holds no HumanEval problems")
    return problems[start::every]
