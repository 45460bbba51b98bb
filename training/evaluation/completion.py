"""Prefix completion (HumanEval / MBPP style): the model continues the prompt; pass@1."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tqdm import tqdm

from llamacode.runtime.config import GenerationConfig
from llamacode.training.evaluation.data import CodeProblem
from llamacode.training.evaluation.execution import Judge, Verdict
from llamacode.training.evaluation.record import markdown_table

# Where a HumanEval completion ends: the next top-level statement.
STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")


@dataclass
class CompletionConfig:
    max_tokens: int = 384
    limit: int | None = None
    stop: tuple[str, ...] = STOP_SEQUENCES

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_completion(judge: Judge, problem: CodeProblem, completion: str) -> Verdict:
    return judge.run(f"{problem.prompt}{completion}\n\n{problem.test}", name=problem.task_id)


def evaluate_completion(
    engine: Any,
    problems: Sequence[CodeProblem],
    judge: Judge,
    config: CompletionConfig | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Greedy completion of every problem, judged by its tests."""
    config = config or CompletionConfig()
    problems = list(problems)[: config.limit] if config.limit else list(problems)
    gen_config = GenerationConfig(max_tokens=config.max_tokens, temperature=0.0, stop=config.stop)
    details = []
    outcomes: Counter[str] = Counter()
    passed = 0
    for problem in tqdm(problems, desc="eval complete", disable=not progress):
        gen = engine.complete(problem.prompt, config=gen_config)
        verdict = judge_completion(judge, problem, gen.text)
        passed += verdict.passed
        outcomes[verdict.outcome] += 1
        details.append(
            {
                "task_id": problem.task_id,
                "passed": verdict.passed,
                "outcome": verdict.outcome,
                "detail": verdict.detail,
                "completion": gen.text,
                "stop_reason": gen.stop_reason,
            }
        )
    summary = {
        "problems": len(problems),
        "pass@1": passed / len(problems) if problems else 0.0,
        "outcomes": dict(outcomes),
    }
    return summary, details


def completion_table(summary: dict[str, Any]) -> str:
    return markdown_table(
        ["pass@1 (greedy)", "problems", "outcomes"],
        [[summary["pass@1"], summary["problems"], summary["outcomes"]]],
    )
