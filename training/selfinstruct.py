"""Self-instruct data (Code Llama's recipe with Magicoder's OSS-Instruct seeding).

For each seed snippet taken from local code, a teacher model served by ``runtime``:

1. writes a self-contained programming problem inspired by the snippet,
2. writes unit tests for it (plain ``assert`` statements),
3. writes several candidate solutions.

Each solution runs with the tests in the sandbox; the first that passes is kept (none
passing drops the problem). Problems are deduplicated (exact and near) and decontaminated
against an evaluation set (any shared word 10-gram drops the example). The result is chat
JSONL, ready for ``data.chat`` of an instruction-tuning run.
"""

from __future__ import annotations

import ast
import json
import os
import random
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from llamacode.training.dedupe import dedupe
from llamacode.training.sandbox import Outcome, Sandbox, SandboxLimits
from llamacode.training.sources import collect


class Teacher(Protocol):
    """What the pipeline needs from a model: ``runtime.engine.Engine`` satisfies it."""

    def chat(self, messages: list[dict[str, str]], config: Any = ...) -> Any: ...


@dataclass(frozen=True)
class Seed:
    path: str
    name: str
    code: str


@dataclass
class SelfInstructConfig:
    count: int = 100
    solutions: int = 5
    temperature: float = 0.8
    max_tokens: int = 768
    min_seed_lines: int = 4
    max_seed_lines: int = 40
    ngram: int = 10
    seed: int = 0


@dataclass
class SelfInstructStats:
    seeds: int = 0
    problems: int = 0
    without_tests: int = 0
    candidates: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    solved: int = 0
    duplicates: int = 0
    contaminated: int = 0
    written: int = 0
    interrupted: bool = False


PROBLEM_PROMPT = """You are exceptionally skilled at crafting high-quality programming problems.
Gain inspiration from the following random code snippet to create a self-contained Python \
programming problem. The problem asks for one Python function; state its exact name and \
signature, what it returns, and the edge cases it must handle. Do not include a solution.

Code snippet for inspiration:
```python
{snippet}
```"""

TESTS_PROMPT = """Write unit tests for the following programming problem as plain Python \
`assert` statements that call the function. Do not write the function itself. Put all \
tests in one ```python code block.

{problem}"""

SOLUTION_PROMPT = """Solve the following programming problem in Python. Answer with one \
```python code block that defines the function (and any imports it needs), nothing else.

{problem}"""


def extract_seeds(roots: Iterable[str | Path], config: SelfInstructConfig) -> list[Seed]:
    """Top-level functions and classes of the Python files under ``roots``, of a useful size."""
    seeds = []
    for doc in collect(roots, ["python"]):
        try:
            tree = ast.parse(doc.text)
        except (SyntaxError, ValueError):
            continue
        lines = doc.text.splitlines()
        for node in tree.body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            end = node.end_lineno or node.lineno
            n = end - node.lineno + 1
            if config.min_seed_lines <= n <= config.max_seed_lines:
                code = "\n".join(lines[node.lineno - 1 : end])
                seeds.append(Seed(doc.path, node.name, code))
    random.Random(config.seed).shuffle(seeds)
    return seeds


_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def code_blocks(text: str) -> list[str]:
    """Fenced code blocks of a reply (an unterminated last block counts)."""
    return [block.strip("\n") for block in _FENCE.findall(text) if block.strip()]


def extract_code(text: str) -> str | None:
    """The code of a reply: its fenced blocks joined, or the whole reply if it parses as Python."""
    blocks = code_blocks(text)
    if blocks:
        return "\n\n".join(blocks)
    try:
        ast.parse(text)
    except SyntaxError:
        return None
    return text.strip() or None


def extract_problem(text: str) -> str | None:
    """The problem statement, without headings like ``[Problem Description]`` or a solution."""
    text = re.split(r"\[Solution\]|^#+\s*Solution", text, flags=re.MULTILINE)[0]
    text = re.sub(r"^\s*\[Problem Description\]\s*", "", text).strip()
    return text if len(text) >= 20 else None


def _checks(tree: ast.Module) -> tuple[bool, list[str], bool]:
    """(top-level asserts?, zero-argument test_* functions, unittest assert* calls?)."""
    top_level = False
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        top_level = top_level or any(isinstance(n, ast.Assert) for n in ast.walk(node))
    functions = [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name.startswith("test")
        and not node.args.args
        and not node.args.posonlyargs
        and any(isinstance(n, ast.Assert) for n in ast.walk(node))
    ]
    unittest_asserts = any(
        isinstance(n, ast.Attribute) and n.attr.startswith("assert")
        for cls in tree.body
        if isinstance(cls, ast.ClassDef)
        for n in ast.walk(cls)
    )
    return top_level, functions, unittest_asserts


def extract_tests(text: str) -> str | None:
    """Test code that parses and checks something when run: top-level ``assert``s,
    ``test_*`` functions with asserts, or ``unittest`` test cases."""
    code = extract_code(text)
    if code is None:
        return None
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return None
    top_level, functions, unittest_asserts = _checks(tree)
    return code if top_level or functions or unittest_asserts else None


def build_test_program(solution: str, tests: str) -> str:
    """Solution, tests, and a runner that calls the test functions and unittest cases
    (defining them alone checks nothing)."""
    _, functions, unittest_asserts = _checks(ast.parse(tests))
    runner = [f"{name}()" for name in functions]
    if unittest_asserts:
        runner += [
            "import sys as _sys, unittest as _unittest",
            "_suite = _unittest.defaultTestLoader.loadTestsFromModule(_sys.modules[__name__])",
            "if not _unittest.TextTestRunner().run(_suite).wasSuccessful():",
            "    raise SystemExit(1)",
        ]
    return "\n\n\n".join([solution, tests, "\n".join(runner)]) + "\n"


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class Decontaminator:
    """Drops examples sharing any word n-gram with the evaluation set."""

    def __init__(self, texts: Iterable[str], n: int = 10) -> None:
        self.n = n
        self.ngrams: set[tuple[str, ...]] = set()
        for text in texts:
            self.ngrams |= word_ngrams(text, n)

    @classmethod
    def from_files(cls, paths: Iterable[str | Path], n: int = 10) -> Decontaminator:
        """Evaluation texts: JSONL records (every string field) or plain text/code files."""
        texts: list[str] = []
        for path in paths:
            content = Path(path).read_text(encoding="utf-8")
            if str(path).endswith(".jsonl"):
                for line in content.splitlines():
                    if line.strip():
                        record = json.loads(line)
                        texts.extend(v for v in record.values() if isinstance(v, str))
            else:
                texts.append(content)
        return cls(texts, n)

    def contaminated(self, *texts: str) -> bool:
        return any(not self.ngrams.isdisjoint(word_ngrams(t, self.n)) for t in texts)


def _ask(
    teacher: Teacher, prompt: str, config: SelfInstructConfig, temperature: float, seed: int
) -> str:
    from llamacode.runtime.config import GenerationConfig

    generation = teacher.chat(
        [{"role": "user", "content": prompt}],
        config=GenerationConfig(max_tokens=config.max_tokens, temperature=temperature, seed=seed),
    )
    return generation.text


def generate(
    teacher: Teacher,
    seeds: Sequence[Seed],
    config: SelfInstructConfig,
    sandbox: Sandbox,
    stats: SelfInstructStats,
) -> Iterator[dict[str, Any]]:
    """Candidate records (problem, first passing solution, tests), before dedupe."""
    bar = tqdm(seeds, desc="self-instruct", unit="seed", dynamic_ncols=True)
    for index, seed in enumerate(bar):
        if stats.solved >= config.count:
            break
        stats.seeds += 1
        bar.set_postfix(
            problems=stats.problems, tested=stats.candidates, solved=stats.solved, refresh=False
        )
        problem = extract_problem(
            _ask(
                teacher, PROBLEM_PROMPT.format(snippet=seed.code), config, config.temperature, index
            )
        )
        if problem is None:
            continue
        stats.problems += 1
        tests = extract_tests(
            _ask(teacher, TESTS_PROMPT.format(problem=problem), config, 0.0, index)
        )
        if tests is None:
            stats.without_tests += 1
            continue
        for attempt in range(config.solutions):
            reply = _ask(
                teacher,
                SOLUTION_PROMPT.format(problem=problem),
                config,
                config.temperature,
                index * 1000 + attempt,
            )
            solution = extract_code(reply)
            if solution is None:
                continue
            stats.candidates += 1
            result = sandbox.run(build_test_program(solution, tests))
            stats.outcomes[result.outcome.value] = stats.outcomes.get(result.outcome.value, 0) + 1
            if result.outcome is Outcome.PASSED:
                stats.solved += 1
                yield {
                    "messages": [
                        {"role": "user", "content": problem},
                        {"role": "assistant", "content": f"```python\n{solution}\n```"},
                    ],
                    "tests": tests,
                    "seed": {"path": seed.path, "name": seed.name},
                }
                break


def filter_records(
    records: Sequence[dict[str, Any]],
    decontaminator: Decontaminator | None,
    stats: SelfInstructStats,
) -> list[dict[str, Any]]:
    """Drop near-duplicate problems and anything overlapping the evaluation set."""
    problems = [r["messages"][0]["content"] for r in records]
    kept, dedupe_stats = dedupe(problems, threshold=0.7)
    stats.duplicates = dedupe_stats.exact_duplicates + dedupe_stats.near_duplicates
    out = []
    for i in kept:
        record = records[i]
        texts = [m["content"] for m in record["messages"]] + [record["tests"]]
        if decontaminator is not None and decontaminator.contaminated(*texts):
            stats.contaminated += 1
            continue
        out.append(record)
    return out


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    """Write records atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def run_selfinstruct(
    teacher: Teacher,
    seed_roots: Iterable[str | Path],
    out_path: str | Path,
    config: SelfInstructConfig,
    *,
    eval_files: Iterable[str | Path] = (),
    sandbox: Sandbox | None = None,
) -> SelfInstructStats:
    """The whole pipeline: seeds -> teacher -> sandbox -> dedupe/decontaminate -> JSONL."""
    stats = SelfInstructStats()
    seeds = extract_seeds(seed_roots, config)
    sandbox = sandbox or Sandbox(
        SandboxLimits(cpu_seconds=5, wall_seconds=10, memory_bytes=1 << 29)
    )
    eval_files = list(eval_files)
    decontaminator = Decontaminator.from_files(eval_files, config.ngram) if eval_files else None
    records: list[dict[str, Any]] = []
    try:
        for record in generate(teacher, seeds, config, sandbox, stats):
            records.append(record)
    except KeyboardInterrupt:
        # Stopping a long run early keeps what it found so far.
        stats.interrupted = True
    stats.written = write_jsonl(filter_records(records, decontaminator, stats), out_path)
    return stats


def stats_json(stats: SelfInstructStats) -> str:
    return json.dumps(asdict(stats), indent=2)
