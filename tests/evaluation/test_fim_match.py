"""Infilling tasks from real code: deterministic cutting, faithful excerpts, scoring."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import pytest

from llamacode.runtime.config import EngineConfig
from llamacode.runtime.engine import Engine
from llamacode.training.evaluation.fim_match import evaluate_matches
from llamacode.training.evaluation.fim_tasks import (
    FimTask,
    TaskBuildConfig,
    build_tasks,
    load_tasks,
    write_tasks,
)
from llamacode.training.evaluation.similarity import edit_similarity, exact_match, levenshtein
from tests.evaluation.conftest import EVALS

STDLIB = Path(sysconfig.get_paths()["stdlib"])
SHIPPED = EVALS / "fim_stdlib_python.jsonl.gz"
SHIPPED_SOURCES = ["json", "textwrap.py", "fnmatch.py", "heapq.py", "bisect.py", "colorsys.py",
                   "shlex.py", "base64.py"]  # fmt: skip


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text(
        "def area(width, height):\n    total = width * height\n    return total\n\n"
        "def perimeter(width, height):\n    return 2 * (width + height)\n"
    )
    (root / "b.js").write_text(
        "function twice(x) {\n  const doubled = x * 2;\n  return doubled;\n}\n"
    )
    (root / ".hidden").mkdir()
    (root / ".hidden" / "c.py").write_text("secret_value = 12345678\n")
    return root


def test_same_seed_gives_identical_tasks_and_bytes(tree, tmp_path):
    first = build_tasks([tree], TaskBuildConfig(seed=7))
    second = build_tasks([tree], TaskBuildConfig(seed=7))
    assert first == second
    a = write_tasks(first, tmp_path / "a.jsonl.gz").read_bytes()
    b = write_tasks(second, tmp_path / "b.jsonl.gz").read_bytes()
    assert a == b
    assert load_tasks(tmp_path / "a.jsonl.gz") == first


def test_other_seed_gives_other_spans(tree):
    spans = [t.middle for t in build_tasks([tree], TaskBuildConfig(seed=1)) if t.kind == "span"]
    others = [t.middle for t in build_tasks([tree], TaskBuildConfig(seed=2)) if t.kind == "span"]
    assert spans != others


def test_tasks_are_exact_excerpts_with_languages_and_hidden_dirs_skipped(tree):
    tasks = build_tasks([tree], TaskBuildConfig(seed=0, per_file=2))
    assert {t.language for t in tasks} == {"python", "javascript"}
    assert not any("secret" in t.prefix + t.middle + t.suffix for t in tasks)
    sources = {"proj/pkg/a.py": (tree / "pkg" / "a.py").read_text(),
               "proj/b.js": (tree / "b.js").read_text()}  # fmt: skip
    for task in tasks:
        assert task.prefix + task.middle + task.suffix in sources[task.path]
        if task.kind == "single-line":
            line = task.middle
            assert "\n" not in line and line == line.strip()
            assert task.suffix.startswith("\n")


def test_shipped_set_loads_with_both_kinds():
    tasks = load_tasks(SHIPPED)
    assert len(tasks) == 48
    assert {t.kind for t in tasks} == {"single-line", "span"}
    assert {t.language for t in tasks} == {"python"}


@pytest.mark.skipif(sys.version_info[:3] != (3, 11, 7), reason="built from CPython 3.11.7")
def test_shipped_set_rebuilds_byte_for_byte_from_this_stdlib(tmp_path):
    config = TaskBuildConfig(seed=0, per_file=2, context_chars=1500)
    tasks = build_tasks([STDLIB / s for s in SHIPPED_SOURCES], config)
    rebuilt = write_tasks(tasks, tmp_path / "rebuilt.jsonl.gz")
    assert rebuilt.read_bytes() == SHIPPED.read_bytes()


def test_exact_match_and_edit_similarity():
    assert exact_match("  return x  \n", "return x")
    assert not exact_match("return y", "return x")
    assert levenshtein("kitten", "sitting") == 3
    assert edit_similarity("abc", "abc") == 1.0
    assert edit_similarity("", "") == 1.0
    assert edit_similarity("abcd", "abcx") == pytest.approx(0.75)
    assert edit_similarity("", "xyz") == 0.0


def test_match_scores_per_language_and_kind(codellama_gguf):
    right = FimTask(
        "t/right", "python", "single-line", "a.py", "def add(x, y):", " return x + y", "\n"
    )
    wrong = FimTask(
        "t/wrong", "python", "single-line", "a.py", "def mul(x, y):", " return x * y", "\n"
    )
    engine = Engine.load(codellama_gguf, EngineConfig(n_ctx=512, n_threads=1))
    try:
        summary, details = evaluate_matches(engine, [right, wrong], progress=False)
    finally:
        engine.close()
    by_id = {(d["task_id"], d["mode"]): d for d in details}
    assert by_id[("t/right", "psm")]["exact_match"] is True
    assert by_id[("t/wrong", "spm")]["exact_match"] is False
    assert by_id[("t/wrong", "spm")]["edit_similarity"] == pytest.approx(11 / 12)
    group = next(g for g in summary["groups"] if g["mode"] == "psm" and g["kind"] == "all")
    assert (group["language"], group["n"], group["exact_match"]) == ("python", 2, 0.5)
