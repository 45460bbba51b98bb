"""The Code Llama paper's key-retrieval task for long contexts.

A long prompt of real Python functions hides one function that returns a two-digit
value at a chosen relative depth; the prompt ends with ``assert my_function() == `` and
the model must complete the value. Insertion happens only between top-level functions,
so the prompt stays valid Python.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from llamacode.runtime.config import GenerationConfig
from llamacode.training.evaluation.errors import DataFormatError
from llamacode.training.evaluation.fim_tasks import source_files
from llamacode.training.evaluation.record import markdown_table

KEY_FUNCTION = (
    "def my_function() -> int:\n"
    '    """Note that this function is used at the end\n'
    '    """\n'
    "    return {key}\n"
)
QUESTION = "assert my_function() == "
SEPARATOR = "\n\n"


@dataclass(frozen=True)
class KeyPrompt:
    """A generated prompt and where its key ended up (in tokens)."""

    text: str
    key: int
    depth: float
    n_tokens: int
    key_offset: int

    @property
    def actual_depth(self) -> float:
        return self.key_offset / self.n_tokens if self.n_tokens else 0.0


def filler_functions(roots: Sequence[str | Path], max_lines: int = 60) -> list[str]:
    """Top-level functions (source text) from the Python files under ``roots``."""
    functions: list[str] = []
    for path, _ in source_files(roots):
        if path.suffix != ".py":
            continue
        try:
            text = path.read_text(encoding="utf-8")
            tree = ast.parse(text)
        except (UnicodeDecodeError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name != "my_function":
                source = ast.get_source_segment(text, node)
                if source and node.end_lineno - node.lineno < max_lines:
                    functions.append(source.rstrip() + "\n")
    if not functions:
        raise DataFormatError(f"no top-level Python functions found under {list(map(str, roots))}")
    return functions


def build_key_prompt(
    functions: Sequence[str],
    count_tokens: Callable[[str], int],
    n_tokens: int,
    depth: float,
    key: int,
    seed: int = 0,
) -> KeyPrompt:
    """A prompt of about ``n_tokens`` tokens with the key function at relative ``depth``."""
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be within [0, 1], got {depth}")
    if not 10 <= key <= 99:
        raise ValueError(f"the key must be a two-digit value, got {key}")
    rng = random.Random(seed)
    pool = list(functions)
    rng.shuffle(pool)
    key_text = KEY_FUNCTION.format(key=key) + SEPARATOR
    fixed = count_tokens(key_text) + count_tokens(QUESTION)
    budget = n_tokens - fixed - 2
    # Functions larger than 1/16 of the prompt would make the depth coarse; functions that
    # would overshoot are skipped, so the prompt fills up to its length.
    max_chunk = max(64, budget // 16)
    chunks: list[str] = []
    sizes: list[int] = []
    total = misses = 0
    for i in range(4 * len(pool)):
        if total >= budget or misses >= 200:
            break
        chunk = pool[i % len(pool)] + SEPARATOR
        size = count_tokens(chunk)
        if size > max_chunk:
            continue
        if total + size > budget:
            misses += 1
            continue
        chunks.append(chunk)
        sizes.append(size)
        total += size
    while True:
        target = depth * (total + fixed)
        prefix_sums = [0]
        for size in sizes:
            prefix_sums.append(prefix_sums[-1] + size)
        at = min(range(len(prefix_sums)), key=lambda j: abs(prefix_sums[j] - target))
        before = "".join(chunks[:at])
        text = before + key_text + "".join(chunks[at:]) + QUESTION
        measured = count_tokens(text)
        if measured <= n_tokens or not chunks:
            break
        # Token merges at the seams made it longer than planned: drop the last function.
        total -= sizes.pop()
        chunks.pop()
    return KeyPrompt(text, key, depth, measured, count_tokens(before) if before else 0)


@dataclass
class KeyRetrievalConfig:
    lengths: tuple[int, ...] = ()
    depths: tuple[float, ...] = (0.0, 0.2, 0.4)
    trials: int = 5
    seed: int = 0
    max_tokens: int = 4

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_lengths(usable: int) -> tuple[int, ...]:
    """Powers of two from 512 up to the usable context, and the usable context itself."""
    lengths = [n for n in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536) if n < usable]
    return (*lengths, usable)


def answer_value(text: str) -> int | None:
    digits = ""
    for ch in text.strip():
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else None


def evaluate_key_retrieval(
    engine: Any,
    functions: Sequence[str],
    config: KeyRetrievalConfig | None = None,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Accuracy per (length, depth) over ``trials`` keys each."""
    config = config or KeyRetrievalConfig()
    usable = engine.n_ctx - config.max_tokens - 2
    lengths = [n for n in (config.lengths or default_lengths(usable)) if n <= usable]
    if not lengths:
        raise DataFormatError(f"no requested length fits the context of {engine.n_ctx} tokens")
    gen_config = GenerationConfig(max_tokens=config.max_tokens, temperature=0.0)
    keys = random.Random(config.seed)
    details = []
    cells: dict[tuple[int, float], list[bool]] = {}
    steps = len(lengths) * len(config.depths) * config.trials
    with tqdm(total=steps, desc="eval key-retrieval", disable=not progress) as bar:
        for length in lengths:
            for depth in config.depths:
                for trial in range(config.trials):
                    key = keys.randint(10, 99)
                    prompt = build_key_prompt(
                        functions, engine.count_tokens, length, depth, key, config.seed + trial
                    )
                    gen = engine.complete(prompt.text, config=gen_config)
                    correct = answer_value(gen.text) == key
                    cells.setdefault((length, depth), []).append(correct)
                    details.append(
                        {
                            "length": length,
                            "depth": depth,
                            "trial": trial,
                            "key": key,
                            "prompt_tokens": prompt.n_tokens,
                            "actual_depth": prompt.actual_depth,
                            "answer": gen.text,
                            "correct": correct,
                        }
                    )
                    bar.update(1)
    summary = {
        "cells": [
            {"length": n, "depth": d, "accuracy": sum(v) / len(v), "trials": len(v)}
            for (n, d), v in sorted(cells.items())
        ]
    }
    return summary, details


def key_table(summary: dict[str, Any]) -> str:
    depths = sorted({c["depth"] for c in summary["cells"]})
    lengths = sorted({c["length"] for c in summary["cells"]})
    acc = {(c["length"], c["depth"]): c["accuracy"] for c in summary["cells"]}
    rows = [[n, *[acc.get((n, d), "") for d in depths]] for n in lengths]
    return markdown_table(["tokens", *[f"depth {d:g}" for d in depths]], rows)


def plot_key_retrieval(summary: dict[str, Any], path: Path) -> None:
    from llamacode.training.evaluation.record import new_figure, save_figure

    fig, ax = new_figure()
    for depth in sorted({c["depth"] for c in summary["cells"]}):
        cells = [c for c in summary["cells"] if c["depth"] == depth]
        ax.plot(
            [c["length"] for c in cells],
            [c["accuracy"] for c in cells],
            "o-",
            label=f"depth {depth:g}",
        )
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("prompt length (tokens)")
    ax.set_ylabel("key retrieval accuracy")
    ax.legend()
    save_figure(fig, path)
