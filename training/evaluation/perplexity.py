"""Perplexity against context length, from llama.cpp's logits at every position.

Each held-out file is scored from its start up to ``max_length`` tokens; the negative
log-likelihood of each token is grouped by its position, so the curve shows whether the
model gets better (or worse) as it sees more of the file. Only llama.cpp is used (a
batch that asks for logits at every position), never torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from llamacode.runtime.config import EngineConfig
from llamacode.runtime.loader import load_llama
from llamacode.runtime.model_facts import read_facts
from llamacode.training.evaluation.errors import DataFormatError, EvaluationError
from llamacode.training.evaluation.fim_tasks import source_files
from llamacode.training.evaluation.record import markdown_table


@dataclass
class PerplexityConfig:
    max_length: int = 0
    min_tokens: int = 128
    max_files: int | None = None
    n_batch: int = 512
    n_threads: int = EngineConfig().n_threads

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class LogitScorer:
    """A llama.cpp context that returns the log-probability of every next token."""

    def __init__(self, model_path: str | Path, n_ctx: int, n_batch: int, n_threads: int):
        import llama_cpp

        self._llama_cpp = llama_cpp
        self.facts = read_facts(model_path)
        config = EngineConfig(n_ctx=n_ctx, n_batch=n_batch, n_threads=n_threads)
        self.llm, _plan = load_llama(self.facts, config)
        self.n_ctx = self.llm.n_ctx()
        self.n_batch = self.llm.n_batch
        self.n_vocab = self.llm.n_vocab()

    def tokenize(self, text: str) -> list[int]:
        """Token ids of a whole document, with BOS when the model expects one."""
        bos = self.facts.add_bos and self.facts.bos is not None
        return self.llm.tokenize(text.encode("utf-8"), add_bos=bos, special=False)

    def logprobs(self, ids: Sequence[int]) -> np.ndarray:
        """``log p(ids[i+1] | ids[:i+1])`` for every i (length ``len(ids) - 1``)."""
        lc = self._llama_cpp
        ids = list(ids)[: self.n_ctx]
        out = np.empty(max(len(ids) - 1, 0), dtype=np.float64)
        self._clear()
        batch = lc.llama_batch_init(self.n_batch, 0, 1)
        try:
            for start in range(0, len(ids) - 1, self.n_batch):
                chunk = ids[start : min(start + self.n_batch, len(ids) - 1)]
                batch.n_tokens = len(chunk)
                for i, token in enumerate(chunk):
                    batch.token[i] = token
                    batch.pos[i] = start + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = True
                if lc.llama_decode(self.llm.ctx, batch) != 0:
                    raise EvaluationError(f"llama.cpp could not evaluate tokens {start}..")
                logits = np.ctypeslib.as_array(
                    lc.llama_get_logits(self.llm.ctx), shape=(len(chunk), self.n_vocab)
                ).astype(np.float64)
                peak = logits.max(axis=1, keepdims=True)
                lse = peak[:, 0] + np.log(np.exp(logits - peak).sum(axis=1))
                targets = np.asarray(ids[start + 1 : start + 1 + len(chunk)])
                out[start : start + len(chunk)] = logits[np.arange(len(chunk)), targets] - lse
        finally:
            lc.llama_batch_free(batch)
            self._clear()
        return out

    def _clear(self) -> None:
        """Forget every cached position (the next document starts at position 0)."""
        lc = self._llama_cpp
        lc.llama_memory_clear(lc.llama_get_memory(self.llm.ctx), True)
        self.llm.n_tokens = 0

    def close(self) -> None:
        self.llm.close()


def position_buckets(max_length: int, first: int = 64) -> list[tuple[int, int]]:
    """[0, 64), [64, 128), [128, 256), ... up to ``max_length``: doubling widths."""
    edges = [0, first]
    while edges[-1] < max_length:
        edges.append(min(edges[-1] * 2, max_length))
    return list(itertools.pairwise(edges))


def evaluate_perplexity(
    scorer: LogitScorer,
    roots: Sequence[str | Path],
    config: PerplexityConfig,
    progress: bool = True,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Per-position-bucket perplexity over the files under ``roots``."""
    length = scorer.n_ctx
    files = source_files(roots)
    docs = []
    for path, rel in files:
        try:
            ids = scorer.tokenize(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError:
            continue
        if len(ids) >= config.min_tokens:
            docs.append((rel, ids[:length]))
        if config.max_files and len(docs) >= config.max_files:
            break
    if not docs:
        raise DataFormatError(
            f"no held-out file under {list(map(str, roots))} has {config.min_tokens} tokens"
        )
    buckets = position_buckets(length)
    nll_sum = np.zeros(len(buckets))
    counts = np.zeros(len(buckets), dtype=np.int64)
    details = []
    for rel, ids in tqdm(docs, desc="eval perplexity", unit="file", disable=not progress):
        lp = scorer.logprobs(ids)
        for b, (lo, hi) in enumerate(buckets):
            part = lp[lo:hi]
            nll_sum[b] -= part.sum()
            counts[b] += part.size
        details.append(
            {
                "file": rel,
                "tokens": len(ids),
                "perplexity": math.exp(-lp.mean()) if lp.size else None,
            }
        )
    summary = {
        "files": len(docs),
        "max_length": length,
        "buckets": [
            {
                "from": lo,
                "to": hi,
                "tokens": int(counts[b]),
                "perplexity": math.exp(nll_sum[b] / counts[b]) if counts[b] else None,
            }
            for b, (lo, hi) in enumerate(buckets)
        ],
    }
    return summary, details


def perplexity_table(summary: dict[str, Any]) -> str:
    rows = [
        [f"{b['from']}-{b['to']}", b["tokens"], b["perplexity"] if b["perplexity"] else "-"]
        for b in summary["buckets"]
    ]
    return markdown_table(["positions", "tokens scored", "perplexity"], rows)


def plot_perplexity(summary: dict[str, Any], path: Path) -> None:
    from llamacode.training.evaluation.record import new_figure, save_figure

    fig, ax = new_figure()
    points = [b for b in summary["buckets"] if b["perplexity"]]
    ax.plot([b["to"] for b in points], [b["perplexity"] for b in points], "o-")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("token position (bucket end)")
    ax.set_ylabel("perplexity")
    ax.set_title(f"perplexity against context length ({summary['files']} files)")
    save_figure(fig, path)
