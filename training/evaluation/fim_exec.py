"""HumanEval-infilling with execution: pass@1 (greedy) and pass@k (sampled), PSM and SPM.

Each middle is the suggestion an editor would show with the cursor between prompt and
suffix (runtime.suggest: the same window, layout, stop and trim rules), judged by running
``prompt + middle + suffix + test + check(entry_point)`` in the sandbox. A model without
FIM tokens is evaluated once, in the engine's prefix-only mode, and the summary says so.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tqdm import tqdm

from llamacode.runtime.errors import ConfigError
from llamacode.runtime.fim import FimMode
from llamacode.runtime.suggest import suggest
from llamacode.runtime.types import SuggestRequest, SuggestSettings
from llamacode.training.evaluation.data import FimProblem
from llamacode.training.evaluation.execution import Judge, Verdict, fim_program
from llamacode.training.evaluation.passk import mean_pass_at_k
from llamacode.training.evaluation.record import markdown_table


@dataclass
class FimExecConfig:
    """Settings of a FIM execution run (the CLI flags mirror these)."""

    modes: tuple[str, ...] = ("psm", "spm")
    samples: int = 0
    ks: tuple[int, ...] = (1, 10, 100)
    temperature: float = 0.8
    max_tokens: int = SuggestSettings().max_tokens
    seed: int = 0
    limit: int | None = None
    line_policy: str = SuggestSettings().line_policy

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge_middle(judge: Judge, problem: FimProblem, middle: str) -> Verdict:
    """Run one filled-in problem against its tests."""
    program = fim_program(problem.prompt, middle, problem.suffix, problem.test, problem.entry_point)
    return judge.run(program, name=problem.task_id)


def effective_modes(engine: Any, requested: Sequence[str]) -> list[str]:
    """The modes to run: the requested ones the model knows, or prefix-only without FIM."""
    fim = engine.facts.fim
    if fim is None:
        return ["prefix-only"]
    unknown = [m for m in requested if m not in ("psm", "spm")]
    if unknown:
        raise ConfigError(f"unknown FIM mode(s) {unknown}; use psm and/or spm")
    known = {m.value for m in fim.modes}
    modes = [m for m in requested if m in known]
    if not modes:
        raise ConfigError(
            f"{engine.facts.name} supports only {sorted(known)} infilling, not {list(requested)}"
        )
    return modes


def suggested_middle(
    engine: Any, prompt: str, suffix: str, settings: SuggestSettings, path: str = ""
) -> Any:
    """The suggestion shown with the cursor between ``prompt`` and ``suffix`` ("" if none),
    and the first model call behind it. ``path`` names the file as an editor names it
    (relative to the workspace)."""
    request = SuggestRequest(prompt + suffix, len(prompt), path=path)
    result = suggest(engine, request, settings)
    first = result.generations[0] if result.generations else None
    return (result.texts[0] if result.texts else ""), first


def _settings(config: FimExecConfig, mode: str, sample: int | None) -> SuggestSettings:
    """The editor's settings, with no time budget (a loaded machine must not change scores)."""
    return SuggestSettings(
        max_tokens=config.max_tokens,
        time_budget_s=None,
        line_policy=config.line_policy,
        temperature=0.0 if sample is None else config.temperature,
        fim_mode=None if mode == "prefix-only" else FimMode(mode),
        seed=config.seed if sample is None else config.seed + 1 + sample,
    )


def evaluate_fim(
    engine: Any,
    problems: Sequence[FimProblem],
    judge: Judge,
    config: FimExecConfig | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Generate and judge every problem in every mode; return (summary, per-problem rows)."""
    config = config or FimExecConfig()
    problems = list(problems)[: config.limit] if config.limit else list(problems)
    modes = effective_modes(engine, config.modes)
    details: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"problems": len(problems), "modes": {}}
    steps = len(modes) * len(problems) * (1 + config.samples)
    bar = tqdm(total=steps, desc="eval fim", unit="gen", disable=not progress)
    try:
        for mode in modes:
            counts: list[tuple[int, int]] = []
            greedy_passed = 0
            outcomes: Counter[str] = Counter()
            for problem in problems:
                middle, gen = suggested_middle(
                    engine, problem.prompt, problem.suffix, _settings(config, mode, None)
                )
                verdict = judge_middle(judge, problem, middle)
                bar.update(1)
                greedy_passed += verdict.passed
                outcomes[verdict.outcome] += 1
                correct = 0
                for s in range(config.samples):
                    sampled, _ = suggested_middle(
                        engine, problem.prompt, problem.suffix, _settings(config, mode, s)
                    )
                    correct += judge_middle(judge, problem, sampled).passed
                    bar.update(1)
                if config.samples:
                    counts.append((config.samples, correct))
                details.append(
                    {
                        "task_id": problem.task_id,
                        "mode": mode,
                        "prompt_mode": gen.prompt_mode if gen else "",
                        "passed": verdict.passed,
                        "outcome": verdict.outcome,
                        "detail": verdict.detail,
                        "middle": middle,
                        "raw": gen.text if gen else "",
                        "stop_reason": gen.stop_reason if gen else "none",
                        "latency_s": gen.elapsed_s if gen else 0.0,
                        "samples": config.samples,
                        "samples_passed": correct,
                    }
                )
            mode_summary: dict[str, Any] = {
                "pass@1": greedy_passed / len(problems) if problems else 0.0,
                "outcomes": dict(outcomes),
            }
            for k in config.ks:
                if config.samples and k <= config.samples:
                    mode_summary[f"pass@{k} (sampled)"] = mean_pass_at_k(counts, k)
            summary["modes"][mode] = mode_summary
    finally:
        bar.close()
    return summary, details


def fim_table(summary: dict[str, Any]) -> str:
    """Mode per row: pass@1 greedy and every sampled pass@k."""
    keys = sorted(
        {k for m in summary["modes"].values() for k in m if k.startswith("pass@") and k != "pass@1"}
    )
    rows = [
        [mode, s["pass@1"], *[s.get(k, "") for k in keys], summary["problems"]]
        for mode, s in summary["modes"].items()
    ]
    return markdown_table(["mode", "pass@1 (greedy)", *keys, "problems"], rows)
