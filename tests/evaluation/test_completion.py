"""Prefix completion (HumanEval / MBPP style): reading both formats, pass@1 by execution."""

from __future__ import annotations

import json

import pytest

from llamacode.runtime.config import EngineConfig
from llamacode.runtime.engine import Engine
from llamacode.training.evaluation.completion import evaluate_completion, judge_completion
from llamacode.training.evaluation.data import CodeProblem, load_code_problems
from llamacode.training.evaluation.errors import DataFormatError
from tests.evaluation.conftest import ADD_TEST, EVALS, SUB_TEST


def test_canonical_solutions_of_both_formats_pass(judge):
    problems = load_code_problems(EVALS / "complete_smoke.jsonl")
    assert [p.task_id for p in problems] == ["smoke/square", "smoke/greet", "smoke/mbpp_min"]
    mbpp = problems[-1]
    assert mbpp.prompt.startswith('"""\nWrite a function smallest')
    assert "assert smallest(5, -3) == -3" in mbpp.test
    for problem in problems:
        assert judge_completion(judge, problem, problem.canonical_solution).passed, problem.task_id


def test_wrong_completion_fails(judge):
    problem = load_code_problems(EVALS / "complete_smoke.jsonl")[0]
    assert judge_completion(judge, problem, "    return x + x\n").outcome == "failed"


def test_completion_pass_at_1_with_a_real_model(codellama_gguf, judge):
    right = CodeProblem("t/add", "def add(x, y):\n   ", f"{ADD_TEST}\ncheck(add)\n")
    wrong = CodeProblem("t/sub", "def sub(x, y):\n   ", f"{SUB_TEST}\ncheck(sub)\n")
    engine = Engine.load(codellama_gguf, EngineConfig(n_ctx=512, n_threads=1))
    try:
        summary, details = evaluate_completion(engine, [right, wrong], judge, progress=False)
    finally:
        engine.close()
    assert [d["passed"] for d in details] == [True, False]
    assert summary["pass@1"] == 0.5
    assert summary["outcomes"] == {"passed": 1, "failed": 1}


def test_rows_without_tests_are_rejected(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": 1, "text": "Write f.", "test_list": []}) + "\n")
    with pytest.raises(DataFormatError):
        load_code_problems(bad)
