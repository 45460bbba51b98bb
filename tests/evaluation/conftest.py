"""Shared pieces for the evaluation tests: the shipped sets, a judge, tiny problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from llamacode.training.evaluation.data import FimProblem
from llamacode.training.evaluation.execution import Judge
from llamacode.training.sandbox import SandboxLimits

EVALS = Path(__file__).resolve().parents[2] / "evals"

ADD_TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n"
SUB_TEST = "def check(candidate):\n    assert candidate(5, 3) == 2\n"


@pytest.fixture(scope="session")
def judge() -> Judge:
    """A sandbox with short limits: every test program here finishes in well under a second."""
    return Judge(SandboxLimits(cpu_seconds=2, wall_seconds=4))


@pytest.fixture
def add_problem() -> FimProblem:
    """The tiny scripted Code Llama model fills this in correctly (' return x + y')."""
    return FimProblem("tiny/add", "def add(x, y):", "\n", " return x + y", ADD_TEST, "add")


@pytest.fixture
def sub_problem() -> FimProblem:
    """Same prompt, but the tests want subtraction: the model's ' return x + y' is wrong."""
    return FimProblem("tiny/sub", "def sub(x, y):", "\n", " return x - y", SUB_TEST, "sub")
