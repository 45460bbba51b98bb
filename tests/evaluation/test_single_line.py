"""HumanEval single-line infilling tasks: one per solution line, the cursor on the emptied line."""

from __future__ import annotations

import gzip
import json

import pytest

from llamacode.training.evaluation.data import load_fim_problems
from llamacode.training.evaluation.errors import DataFormatError
from llamacode.training.evaluation.fim_exec import judge_middle
from llamacode.training.evaluation.single_line import build_single_line, single_line_problems
from tests.evaluation.conftest import EVALS

ROW = {
    "task_id": "HumanEval/x",
    "prompt": 'def total(xs):\n    """Sum of xs."""\n',
    "canonical_solution": "    s = 0\n\n    for x in xs:\n        s += x\n    return s\n",
    "test": "def check(candidate):\n    assert candidate([1, 2, 3]) == 6\n",
    "entry_point": "total",
}


def test_each_non_blank_solution_line_is_one_task_with_the_line_emptied():
    problems = single_line_problems([ROW])
    assert [p.canonical_solution for p in problems] == [
        "    s = 0",
        "    for x in xs:",
        "        s += x",
        "    return s",
    ]
    for p in problems:
        assert (
            p.prompt + p.canonical_solution + p.suffix == ROW["prompt"] + ROW["canonical_solution"]
        )
        assert p.prompt.endswith("\n") and p.suffix.startswith("\n")


def test_every_task_passes_with_its_own_line_and_fails_without(judge):
    for p in single_line_problems([ROW]):
        assert judge_middle(judge, p, p.canonical_solution).passed
        assert not judge_middle(judge, p, "    pass").passed


def test_disjoint_subsets_by_start(tmp_path):
    source = tmp_path / "he.jsonl.gz"
    source.write_bytes(gzip.compress(json.dumps(ROW).encode() + b"\n"))
    first = [p.task_id for p in build_single_line(source, every=2, start=0)]
    second = [p.task_id for p in build_single_line(source, every=2, start=1)]
    assert first == ["HumanEval/x/L0", "HumanEval/x/L3"]
    assert second == ["HumanEval/x/L2", "HumanEval/x/L4"]
    with pytest.raises(DataFormatError):
        build_single_line(source, every=2, start=2)


@pytest.mark.parametrize("name", ["humaneval_single_line_tenth", "humaneval_single_line_tenth_b"])
def test_shipped_sets_are_disjoint_tenths_whose_canonical_lines_pass(name, judge):
    problems = load_fim_problems(EVALS / f"{name}.jsonl.gz")
    assert len(problems) in (103, 104)
    for p in problems[::13]:
        assert judge_middle(judge, p, p.canonical_solution).passed
    other = (
        "humaneval_single_line_tenth_b" if name.endswith("tenth") else "humaneval_single_line_tenth"
    )
    assert not {p.task_id for p in problems} & {
        p.task_id for p in load_fim_problems(EVALS / f"{other}.jsonl.gz")
    }
