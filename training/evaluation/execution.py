"""Judging generated code by running it in the sandbox.

A program that fails, times out or exceeds a limit is a failed sample. A sandbox that
cannot run at all is an :class:`EvaluationError`: a broken sandbox never passes for a
wrong answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from llamacode.training.evaluation.errors import EvaluationError
from llamacode.training.sandbox import Outcome, Sandbox, SandboxError, SandboxLimits


@dataclass(frozen=True)
class Verdict:
    """What one program did: ``outcome`` is a sandbox outcome name ("passed", "timeout", ...)."""

    outcome: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.outcome == Outcome.PASSED.value


def fim_program(prompt: str, middle: str, suffix: str, test: str, entry_point: str) -> str:
    """The file HumanEval-infilling runs: the filled function, its tests, and the call."""
    return f"{prompt}{middle}{suffix}\n\n{test}\n\ncheck({entry_point})\n"


class Judge:
    """Runs programs under fixed limits and turns each run into a :class:`Verdict`."""

    def __init__(self, limits: SandboxLimits | None = None, sandbox: Sandbox | None = None):
        try:
            self.sandbox = sandbox or Sandbox(
                limits or SandboxLimits(cpu_seconds=10, wall_seconds=15)
            )
        except SandboxError as exc:
            raise EvaluationError(f"the execution sandbox is unavailable: {exc}") from exc

    def run(self, program: str, name: str = "program") -> Verdict:
        try:
            result = self.sandbox.run(program)
        except SandboxError as exc:
            raise EvaluationError(
                f"the sandbox failed while running {name}; no score was recorded: {exc}"
            ) from exc
        detail = "" if result.passed else _last_line(result.stderr) or result.outcome.value
        return Verdict(result.outcome.value, detail)

    @property
    def settings(self) -> dict[str, object]:
        limits = self.sandbox.limits
        return {
            "cpu_seconds": limits.cpu_seconds,
            "wall_seconds": limits.wall_seconds,
            "memory_bytes": limits.memory_bytes,
            "network_isolation": self.sandbox.network_isolation,
        }


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""
