"""The token ids of a FIM prompt, from text: one function for serving and for tuning.

The engine calls it with llama.cpp's tokenizer; ``llamacode tune`` builds its training
examples with it and the model's own tokenizer in PyTorch, so what a tuned model learns
is laid out exactly as what it is later asked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import PurePosixPath

from llamacode.runtime.context import comment_block
from llamacode.runtime.fim import FimMode, FimTokens, fim_layout, repo_head
from llamacode.runtime.types import ContextFile

Tokenize = Callable[[str], list[int]]


def infill_ids(
    fim: FimTokens,
    tokenize: Tokenize,
    tokenize_nospace: Tokenize,
    prefix: str,
    suffix: str,
    *,
    context: Sequence[ContextFile] = (),
    path: str = "",
    mode: FimMode = FimMode.PSM,
    budget: int,
) -> list[int]:
    """The prompt ids whose continuation is the middle between ``prefix`` and ``suffix``.

    ``context`` (pieces of other files) goes first, so it stays at the prompt's stable
    start: in the model's repository-level form when its vocabulary has one (``path``
    names the file being edited there), else as comment-headed code before the prefix.
    ``budget`` bounds the prompt; too long a prompt keeps the end of the prefix and the
    start of the suffix. ``tokenize_nospace`` encodes text that continues other text
    (no SentencePiece leading space).
    """
    repo_level = fim.file_sep is not None and fim.repo_name is not None and bool(context or path)
    head = "" if repo_level else "".join(comment_block(c) for c in context)
    repo_ids = repo_head_ids(fim, tokenize_nospace, context, path) if repo_level else []
    budget = max(budget - len(repo_ids), 16)
    prefix_ids = tokenize(head + prefix)
    suffix_ids = tokenize_nospace(suffix)
    # The suffix gets at most a quarter of the budget unless the prefix leaves room.
    suffix_keep = min(len(suffix_ids), max(budget // 4, budget - len(prefix_ids)))
    prefix_keep = min(len(prefix_ids), budget - suffix_keep)
    kept_prefix = prefix_ids[len(prefix_ids) - prefix_keep :]
    ids = fim_layout(fim, kept_prefix, suffix_ids[:suffix_keep], mode)
    if repo_ids:
        start = 1 if fim.bos is not None and ids[:1] == [fim.bos] else 0
        ids[start:start] = repo_ids
    return ids


def repo_head_ids(
    fim: FimTokens, tokenize_nospace: Tokenize, context: Sequence[ContextFile], path: str
) -> list[int]:
    """``<|repo_name|>`` and one ``<|file_sep|>path`` block per file, as the model was
    trained on repositories (the repository is named by the edited file's folder)."""
    name = PurePosixPath(path).parent.name or "workspace"
    files = [(tokenize_nospace(f"{c.path}\n"), tokenize_nospace(c.text)) for c in context]
    return repo_head(
        fim,
        tokenize_nospace(f"{name}\n"),
        files,
        tokenize_nospace(f"{path or 'untitled'}\n"),
    )
