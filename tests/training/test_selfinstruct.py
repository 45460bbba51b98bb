"""Self-instruct: parsing teacher replies, sandbox filtering, dedupe, decontamination."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from llamacode.training.sandbox import Sandbox, SandboxLimits
from llamacode.training.selfinstruct import (
    Decontaminator,
    SelfInstructConfig,
    SelfInstructStats,
    build_test_program,
    code_blocks,
    extract_code,
    extract_problem,
    extract_seeds,
    extract_tests,
    filter_records,
    run_selfinstruct,
)

PROBLEM = "Write a function `clamp(x, lo, hi)` that returns x limited to the range [lo, hi]."
TESTS = "```python\nassert clamp(5, 0, 3) == 3\nassert clamp(-1, 0, 3) == 0\nassert clamp(2, 0, 3) == 2\n```"
WRONG = "```python\ndef clamp(x, lo, hi):\n    return x\n```"
LOOPS = "```python\ndef clamp(x, lo, hi):\n    while True:\n        pass\n```"
RIGHT = "Here you go:\n```python\ndef clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n```\nDone."


@dataclass
class _Reply:
    text: str


class ScriptedTeacher:
    """Answers each kind of prompt from a script (the teacher's side of the protocol)."""

    def __init__(self, solutions: list[str]) -> None:
        self.solutions = list(solutions)
        self.calls: list[str] = []

    def chat(self, messages, config=None):
        prompt = messages[-1]["content"]
        if prompt.startswith("You are exceptionally skilled"):
            self.calls.append("problem")
            return _Reply(f"[Problem Description]\n{PROBLEM}\n\n[Solution]\nomitted")
        if prompt.startswith("Write unit tests"):
            self.calls.append("tests")
            return _Reply(TESTS)
        self.calls.append("solution")
        return _Reply(self.solutions.pop(0) if self.solutions else WRONG)


def test_reply_parsing() -> None:
    assert code_blocks("a\n```py\nx = 1\n```\nb\n```\ny = 2\n```") == ["x = 1", "y = 2"]
    assert code_blocks("```python\nunterminated = True") == ["unterminated = True"]
    assert extract_code("x = 1") == "x = 1" and extract_code("not python at all !") is None
    assert extract_problem(f"[Problem Description]\n{PROBLEM}\n[Solution]\ncode") == PROBLEM
    assert extract_problem("too short") is None
    assert extract_tests(TESTS).startswith("assert clamp")
    assert extract_tests("```python\nprint('no asserts')\n```") is None


def test_seeds_are_top_level_definitions_of_a_useful_size(tmp_path: Path) -> None:
    body = "\n".join(f"    y{i} = x + {i}" for i in range(5))
    (tmp_path / "m.py").write_text(
        f"def small(x):\n    return x\n\n\ndef useful(x):\n{body}\n    return x\n"
    )
    (tmp_path / "broken.py").write_text("def (:\n")
    seeds = extract_seeds([tmp_path], SelfInstructConfig())
    assert [s.name for s in seeds] == ["useful"]


def test_first_passing_solution_is_kept_after_failures(tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "s.py").write_text(
        "def f(a, b):\n    if a > b:\n        return a\n    return b\n"
    )
    teacher = ScriptedTeacher([WRONG, LOOPS, RIGHT, WRONG])
    sandbox = Sandbox(SandboxLimits(cpu_seconds=1, wall_seconds=3))
    out = tmp_path / "data.jsonl"
    stats = run_selfinstruct(
        teacher,
        [tmp_path / "seeds"],
        out,
        SelfInstructConfig(count=1, solutions=4),
        sandbox=sandbox,
    )
    assert teacher.calls == ["problem", "tests", "solution", "solution", "solution"]
    assert stats.outcomes == {"failed": 1, "timeout": 1, "passed": 1} and stats.written == 1
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert record["messages"][0] == {"role": "user", "content": PROBLEM}
    assert "max(lo, min(x, hi))" in record["messages"][1]["content"]
    assert record["tests"].startswith("assert")


def test_unsolved_problems_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "s.py").write_text("def f(a, b):\n    if a > b:\n        return a\n    return b\n")
    stats = run_selfinstruct(
        ScriptedTeacher([]),
        [tmp_path],
        tmp_path / "o.jsonl",
        SelfInstructConfig(solutions=2),
        sandbox=Sandbox(SandboxLimits(cpu_seconds=1, wall_seconds=3)),
    )
    assert stats.written == 0 and (tmp_path / "o.jsonl").read_text() == ""


def _record(problem: str, solution: str = "def f():\n    return 1") -> dict:
    return {
        "messages": [
            {"role": "user", "content": problem},
            {"role": "assistant", "content": solution},
        ],
        "tests": "assert f() == 1",
    }


def test_dedupe_and_decontamination() -> None:
    eval_prompt = "def has_close_elements(numbers, threshold): check if in given list of numbers, are any two numbers closer to each other than given threshold"
    records = [
        _record(PROBLEM),
        _record(PROBLEM + " "),  # a duplicate
        _record(
            "Write a function that checks if in given list of numbers, are any two numbers closer to each other than given threshold."
        ),
        _record(
            "Write a function `mean(xs)` returning the arithmetic mean of a non-empty list of floats."
        ),
    ]
    stats = SelfInstructStats()
    kept = filter_records(records, Decontaminator([eval_prompt], n=10), stats)
    assert [r["messages"][0]["content"] for r in kept] == [
        PROBLEM,
        records[3]["messages"][0]["content"],
    ]
    assert stats.duplicates == 1 and stats.contaminated == 1


@pytest.mark.slow
def test_pipeline_with_the_default_model_as_teacher(tmp_path: Path, default_model: Path) -> None:
    from llamacode.runtime.config import EngineConfig
    from llamacode.runtime.engine import Engine

    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "s.py").write_text(
        "def add_all(values):\n    total = 0\n    for v in values:\n        total += v\n    return total\n"
    )
    engine = Engine.load(default_model, EngineConfig(n_ctx=2048))
    try:
        stats = run_selfinstruct(
            engine,
            [tmp_path / "seeds"],
            tmp_path / "out.jsonl",
            SelfInstructConfig(count=1, solutions=2, max_tokens=256),
            sandbox=Sandbox(SandboxLimits(cpu_seconds=2, wall_seconds=5)),
        )
    finally:
        engine.close()
    assert stats.seeds == 1
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == stats.written <= 1
    for line in lines:
        record = json.loads(line)
        assert record["messages"][0]["role"] == "user" and record["tests"]


class InterruptedTeacher(ScriptedTeacher):
    """Solves the first problem, then the user presses Ctrl-C."""

    def chat(self, messages, config=None):
        if self.calls.count("problem") == 1 and "solution" in self.calls:
            raise KeyboardInterrupt
        return super().chat(messages, config)


def test_interrupting_a_run_keeps_what_it_found(tmp_path: Path) -> None:
    body = "    if a > b:\n        return a\n    return b\n"
    (tmp_path / "s.py").write_text(f"def f(a, b):\n{body}\n\ndef g(a, b):\n{body}")
    stats = run_selfinstruct(
        InterruptedTeacher([RIGHT]),
        [tmp_path],
        tmp_path / "o.jsonl",
        SelfInstructConfig(),
        sandbox=Sandbox(SandboxLimits(cpu_seconds=1, wall_seconds=3)),
    )
    assert stats.interrupted and stats.written == 1
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize(
    ("tests", "expected"),
    [
        ("def test_clamp():\n    assert clamp(5, 0, 3) == 3\n", True),
        ("def test_clamp():\n    assert clamp(5, 0, 3) == 99\n", False),
        (
            "import unittest\n\nclass T(unittest.TestCase):\n"
            "    def test_clamp(self):\n        self.assertEqual(clamp(5, 0, 3), 99)\n",
            False,
        ),
        (
            "import unittest\n\nclass T(unittest.TestCase):\n"
            "    def test_clamp(self):\n        self.assertEqual(clamp(5, 0, 3), 3)\n",
            True,
        ),
    ],
)
def test_test_functions_and_unittest_cases_are_actually_run(tests: str, expected: bool) -> None:
    solution = extract_code(RIGHT)
    assert extract_tests(f"```python\n{tests}```") == tests.rstrip("\n")
    result = Sandbox(SandboxLimits(cpu_seconds=2, wall_seconds=5)).run(
        build_test_program(solution, tests)
    )
    assert result.passed is expected, result.stderr


def test_tests_that_check_nothing_are_rejected() -> None:
    assert extract_tests("```python\ndef test_x(fixture):\n    assert fixture\n```") is None
    assert extract_tests("```python\ndef helper():\n    return 1\n```") is None
