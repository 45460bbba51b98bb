"""Scoring infilling tasks cut from real code: exact match and edit similarity, per language.

The text scored is the suggestion an editor would show at the task's cursor
(runtime.suggest), never the model's raw output.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tqdm import tqdm

from llamacode.runtime.fim import FimMode
from llamacode.runtime.types import SuggestSettings
from llamacode.training.evaluation.fim_exec import effective_modes, suggested_middle
from llamacode.training.evaluation.fim_tasks import FimTask
from llamacode.training.evaluation.record import markdown_table
from llamacode.training.evaluation.similarity import edit_similarity, exact_match


@dataclass
class FimMatchConfig:
    modes: tuple[str, ...] = ("psm", "spm")
    max_tokens_line: int = 48
    max_tokens_span: int = 96
    limit: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _settings(task: FimTask, mode: str, config: FimMatchConfig) -> SuggestSettings:
    single = task.kind == "single-line"
    return SuggestSettings(
        max_tokens=config.max_tokens_line if single else config.max_tokens_span,
        time_budget_s=None,
        fim_mode=None if mode == "prefix-only" else FimMode(mode),
    )


def evaluate_matches(
    engine: Any,
    tasks: Sequence[FimTask],
    config: FimMatchConfig | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Greedy infill for every task; summary keyed by mode, then language and kind."""
    config = config or FimMatchConfig()
    tasks = list(tasks)[: config.limit] if config.limit else list(tasks)
    modes = effective_modes(engine, config.modes)
    details: list[dict[str, Any]] = []
    groups: dict[tuple[str, str, str], list[tuple[bool, float]]] = defaultdict(list)
    with tqdm(total=len(modes) * len(tasks), desc="eval fim-match", disable=not progress) as bar:
        for mode in modes:
            for task in tasks:
                text, _ = suggested_middle(
                    engine, task.prefix, task.suffix, _settings(task, mode, config), task.path
                )
                em = exact_match(text, task.middle)
                es = edit_similarity(text, task.middle)
                for key in ((mode, task.language, task.kind), (mode, task.language, "all")):
                    groups[key].append((em, es))
                details.append(
                    {
                        "task_id": task.task_id,
                        "mode": mode,
                        "language": task.language,
                        "kind": task.kind,
                        "exact_match": em,
                        "edit_similarity": es,
                        "generated": text,
                        "expected": task.middle,
                    }
                )
                bar.update(1)
    summary: dict[str, Any] = {"tasks": len(tasks), "groups": []}
    for (mode, language, kind), scores in sorted(groups.items()):
        summary["groups"].append(
            {
                "mode": mode,
                "language": language,
                "kind": kind,
                "n": len(scores),
                "exact_match": sum(em for em, _ in scores) / len(scores),
                "edit_similarity": sum(es for _, es in scores) / len(scores),
            }
        )
    return summary, details


def match_table(summary: dict[str, Any]) -> str:
    rows = [
        [g["mode"], g["language"], g["kind"], g["n"], g["exact_match"], g["edit_similarity"]]
        for g in summary["groups"]
    ]
    return markdown_table(
        ["mode", "language", "kind", "tasks", "exact match", "edit similarity"], rows
    )
